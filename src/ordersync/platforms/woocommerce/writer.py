"""Canonical operations written into a WooCommerce shop, through REST v3 or the legacy API v2.

A thin translation: the outbox decides when to send and whether an interrupted send took effect; this
module only turns one operation into the shop's calls, refusing (``OperationRejected``) what the shop
would take wrongly instead of refusing. Three such traps are WooCommerce's own: the legacy API turns an
unknown status into ``pending`` without an error, ``POST orders`` with an unknown product creates an
order with an empty line, and a refund goes through the payment gateway unless ``api_refund`` is false.
Writes that are not idempotent (notes, refunds, orders, emails) are sent once (``retry=False``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import structlog

from ordersync.config import WooCommerceShop
from ordersync.errors import BadResponseError, ClientRequestError, HttpError, NotFoundError, ServerError
from ordersync.http import HttpPolicy
from ordersync.mapping import MappingContext, MappingError, load_mapping, minor_units
from ordersync.mapping.statuses import platform_value
from ordersync.models import Address, LineItem, Order, PaymentStatus, Platform
from ordersync.operations import (
    AddComment,
    Applied,
    CancelOrder,
    CreateOrder,
    CreateRefund,
    Operation,
    OperationRejected,
    RecordPayment,
    SendInvoice,
    SetPaymentStatus,
    SetStatus,
    decimal_str,
)
from ordersync.platforms.woocommerce.client import OrderFilters, open_client
from ordersync.platforms.woocommerce.extract import needs_refunds

log = structlog.get_logger("ordersync.woocommerce.writer")

BATCH_LIMIT = 100
"""WooCommerce refuses a batch of more than 100 items (413)."""
MARKER_KEY = "_ordersync_marker"
SOURCE_KEY = "_ordersync_source"
LEGACY_MARKER_KEY = "ordersync_marker"
LEGACY_SOURCE_KEY = "ordersync_source"
"""The legacy API sets and shows only meta keys without a leading underscore."""
DEFAULT_REFUND_REASON = "Refund from ordersync"
_PAID = {PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}


class WooCommerceWriter:
    """The ``Writer`` for one WooCommerce shop (either API version)."""

    def __init__(
        self,
        shop: WooCommerceShop,
        policy: HttpPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.shop = shop
        self.policy = policy
        self.client = open_client(shop, policy, transport=transport)
        self.legacy = shop.api_version == "v2"
        self._statuses: set[str] | None = None
        self._products: dict[str, tuple[int, int] | None] = {}

    async def __aenter__(self) -> WooCommerceWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    # ---- HTTP ---------------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> Any:
        return (await self.client.send(method, path, body, params=params, retry=retry)).data

    def _field(self, data: Any, key: str, path: str) -> Any:
        """``data[key]``, or a ``BadResponseError`` naming what the shop sent instead."""
        if not isinstance(data, dict) or key not in data:
            raise BadResponseError(f"answer has no {key!r}", url=path, shop=self.shop.name)
        return data[key]

    def _wrap(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """The legacy API's envelope (``{"order": {...}}``); REST v3 takes the body bare."""
        return {key: body} if self.legacy else body

    def _unwrap(self, key: str, data: Any, path: str) -> Any:
        return self._field(data, key, path) if self.legacy else data

    # ---- reading ------------------------------------------------------------------------------
    async def fetch(self, order_id: str) -> Order:
        raw = await self.client.order(order_id)
        refunds = needs_refunds(bool(raw.get("refunds")), self.client.version)
        found = await asyncio.gather(
            self.client.refunds(order_id) if refunds else _nothing(),
            self.client.notes(order_id),
        )
        if refunds:
            raw["_refunds"] = found[0]
        raw["_notes"] = found[1]
        return load_mapping(f"woocommerce_{self.shop.api_version}").map(raw, self._mapping_context())

    def _mapping_context(self) -> MappingContext:
        return MappingContext(
            platform=Platform.WOOCOMMERCE,
            shop=self.shop.name,
            timezone=self.shop.zone,
            currency=self.shop.currency,
        )

    async def find_created(self, op: CreateOrder, marker: str, since: datetime) -> list[str]:
        """Every order modified since a minute before ``since`` is looked at: creating one sets its
        modified time, and the minute covers a shop clock a little behind ours."""
        filters = OrderFilters(statuses=("any",), modified_after=since - timedelta(minutes=1))
        page = 1
        while True:
            params = self.client.list_params(page, BATCH_LIMIT, filters)
            if self.legacy:
                params["filter[meta]"] = "true"
            data = await self._call("GET", "/orders", params=params)
            orders = self._field(data, "orders", "/orders") if self.legacy else data
            if not isinstance(orders, list):
                raise BadResponseError("order list is not a list", url="/orders", shop=self.shop.name)
            for order in orders:
                if isinstance(order, dict) and self._marker_of(order) == marker:
                    return [str(order.get("id"))]
            if len(orders) < BATCH_LIMIT:
                return []
            page += 1

    def _marker_of(self, order: dict[str, Any]) -> Any:
        if self.legacy:
            meta = order.get("order_meta")
            return meta.get(LEGACY_MARKER_KEY) if isinstance(meta, dict) else None
        for entry in order.get("meta_data") or []:
            if isinstance(entry, dict) and entry.get("key") == MARKER_KEY:
                return entry.get("value")
        return None

    # ---- writing ------------------------------------------------------------------------------
    async def apply(self, op: Operation, marker: str, current: Order | None) -> Applied:
        if isinstance(op, SetStatus):
            return await self._set_status(op.order_id, op.value)
        if isinstance(op, CancelOrder):
            return await self._set_status(op.order_id, "cancelled")
        if isinstance(op, CreateOrder):
            return await self._create_order(op, marker)
        if current is None:
            raise OperationRejected(f"{op.kind} needs the current order of shop {self.shop.name!r}")
        if isinstance(op, SetPaymentStatus):
            return await self._set_payment_status(op, current)
        if isinstance(op, AddComment):
            return await self._add_comment(op)
        if isinstance(op, CreateRefund):
            return await self._create_refund(op, marker, current)
        if isinstance(op, RecordPayment):
            return await self._record_payment(op, current)
        if isinstance(op, SendInvoice):
            return await self._send_invoice(op)
        raise OperationRejected(f"WooCommerce writer does not know {type(op).__name__}")

    async def _known_statuses(self) -> set[str]:
        if self._statuses is None:
            data = await self._call("GET", "/orders/statuses")
            listed = self._field(data, "order_statuses", "/orders/statuses")
            self._statuses = {str(k).removeprefix("wc-") for k in listed}
        return self._statuses

    async def _check_status(self, order_id: str, value: str) -> None:
        """Only the legacy API needs this: it would make the order pending instead of refusing."""
        if self.legacy and value not in await self._known_statuses():
            known = ", ".join(sorted(await self._known_statuses()))
            raise OperationRejected(
                f"shop {self.shop.name!r} has no order status {value!r} (order {order_id}; it knows {known})"
            )

    async def _set_status(self, order_id: str, value: str) -> Applied:
        if value == REFUNDED:
            raise _refunded_refusal(order_id)
        await self._check_status(order_id, value)
        path = f"/orders/{order_id}"
        data = await self._call("PUT", path, self._wrap("order", {"status": value}))
        self._same_status(self._unwrap("order", data, path), value, path)
        return Applied()

    def _same_status(self, order: Any, value: str, path: str) -> None:
        """A shop that answers another status than asked changed the order in a way we did not mean."""
        got = order.get("status") if isinstance(order, dict) else None
        if got != value:
            raise BadResponseError(
                f"asked for status {value!r}, the shop answered {got!r}", url=path, shop=self.shop.name
            )

    async def set_statuses(self, ops: list[SetStatus]) -> list[Applied | Exception]:
        """Status updates in ``POST orders/batch`` calls of up to 100 (REST v3), one PUT each on the
        legacy API; the result holds each op's outcome in order, an error where that one failed."""
        if any(op.value == REFUNDED for op in ops):
            rest = iter(await self.set_statuses([op for op in ops if op.value != REFUNDED]))
            return [_refunded_refusal(op.order_id) if op.value == REFUNDED else next(rest) for op in ops]
        if self.legacy:
            return [await _outcome(self._set_status(op.order_id, op.value)) for op in ops]
        results: list[Applied | Exception] = []
        for start in range(0, len(ops), BATCH_LIMIT):
            results.extend(await self._batch(ops[start : start + BATCH_LIMIT]))
        return results

    async def _batch(self, ops: list[SetStatus]) -> list[Applied | Exception]:
        path = "/orders/batch"
        try:
            body = {"update": [{"id": _order_int(op.order_id), "status": op.value} for op in ops]}
            data = await self._call("POST", path, body)
            items = self._field(data, "update", path)
        except (HttpError, OperationRejected) as exc:
            return [exc for _ in ops]
        if not isinstance(items, list) or len(items) != len(ops):
            error = BadResponseError("batch answer does not list every update", url=path, shop=self.shop.name)
            return [error for _ in ops]
        return [self._batch_item(op, item, path) for op, item in zip(ops, items, strict=True)]

    def _batch_item(self, op: SetStatus, item: Any, path: str) -> Applied | Exception:
        if isinstance(item, dict) and isinstance(item.get("error"), dict):
            error = item["error"]
            data = error.get("data")
            status = data.get("status") if isinstance(data, dict) else None
            # An item the shop failed on (5xx) is worth another try; one it refused (4xx) is not.
            kind = ServerError if isinstance(status, int) and status >= 500 else ClientRequestError
            return kind(
                f"order {op.order_id}: {error.get('message')}",
                url=path,
                status=status if isinstance(status, int) else None,
                shop=self.shop.name,
                code=error.get("code") if isinstance(error.get("code"), str) else None,
            )
        try:
            self._same_status(item, op.value, f"{path} (order {op.order_id})")
        except BadResponseError as exc:
            return exc
        return Applied()

    async def _set_payment_status(self, op: SetPaymentStatus, current: Order) -> Applied:
        if op.value != "paid":
            raise OperationRejected(
                f"WooCommerce has no payment status {op.value!r}: only 'paid' can be set "
                f"(order {op.order_id}, shop {self.shop.name!r})"
            )
        return await self._mark_paid(op.order_id, current, None, None)

    async def _mark_paid(
        self, order_id: str, current: Order, gateway: str | None, transaction_id: str | None
    ) -> Applied:
        """``set_paid`` (v3) or ``payment_details.paid`` (legacy, which wants a method id and title)."""
        path = f"/orders/{order_id}"
        if self.legacy:
            method, title = _gateway(current, gateway)
            if not method or not title:
                # An unpaid order has no canonical payment: its method is read from the order itself.
                details = (await self.client.order(order_id)).get("payment_details") or {}
                method = method or details.get("method_id") or None
                title = title or (details.get("method_title") if method == details.get("method_id") else None)
            if not method:
                raise OperationRejected(
                    f"order {order_id} in shop {self.shop.name!r} has no payment method, which the "
                    "legacy API needs to mark it paid"
                )
            details = {"method_id": method, "method_title": title or method, "paid": True}
            if transaction_id:
                details["transaction_id"] = transaction_id
            await self._call("PUT", path, {"order": {"payment_details": details}})
        else:
            body: dict[str, Any] = {"set_paid": True}
            if transaction_id:
                body["transaction_id"] = transaction_id
            if gateway:
                body["payment_method"] = gateway
            await self._call("PUT", path, body)
        return Applied()

    async def _add_comment(self, op: AddComment) -> Applied:
        path = f"/orders/{op.order_id}/notes"
        note = {"note": op.text, "customer_note": op.customer_visible}
        data = await self._call("POST", path, self._wrap("order_note", note), retry=False)
        created = self._unwrap("order_note", data, path)
        return Applied(ids={"comment_id": str(self._field(created, "id", path))})

    async def _create_refund(self, op: CreateRefund, marker: str, current: Order) -> Applied:
        where = f"order {op.order_id} in shop {self.shop.name!r}"
        if op.currency and op.currency != current.currency:
            raise OperationRejected(
                f"refund of {decimal_str(op.amount)} {op.currency} into {where}, "
                f"which is in {current.currency}"
            )
        left = current.total - current.refunded_total
        if op.amount > left:
            raise OperationRejected(
                f"refund of {decimal_str(op.amount)} {current.currency} is more than the "
                f"{decimal_str(left)} left to refund on {where} (total {decimal_str(current.total)}, "
                f"refunded {decimal_str(current.refunded_total)})"
            )
        body: dict[str, Any] = {
            # In the currency's precision: "5.00", not the "5.0000" a 4-decimal source amount would give.
            "amount": decimal_str(op.amount.quantize(Decimal(1).scaleb(-minor_units(current.currency)))),
            # The reason is the customer's to read: the marker goes in the refund's meta, except on
            # the legacy API, whose refunds take no meta (there it ends the reason, in brackets).
            "reason": f"{op.reason or DEFAULT_REFUND_REASON} [{marker}]"
            if self.legacy
            else op.reason or DEFAULT_REFUND_REASON,
            "api_refund": self.shop.gateway_refunds,
        }
        if not self.legacy:
            lines = _refund_lines(op, current)
            if lines:
                body["line_items"] = lines
            body["meta_data"] = [{"key": MARKER_KEY, "value": marker}]
        path = f"/orders/{op.order_id}/refunds"
        data = await self._call("POST", path, self._wrap("order_refund", body), retry=False)
        created = self._unwrap("order_refund", data, path)
        return Applied(ids={"refund_id": str(self._field(created, "id", path))})

    async def _record_payment(self, op: RecordPayment, current: Order) -> Applied:
        where = f"order {op.order_id} in shop {self.shop.name!r}"
        if op.currency and op.currency != current.currency:
            raise OperationRejected(f"payment in {op.currency} for {where}, which is in {current.currency}")
        if current.paid_at is not None or current.payment_status in _PAID:
            if op.amount == current.total:
                # The effect is already true (a replica's own payment step, or a shop that marked it
                # paid): done, not dead.
                return Applied(ids={}, found=True)
            raise OperationRejected(f"{where} is already paid; WooCommerce records one payment per order")
        if op.amount != current.total:
            raise OperationRejected(
                f"payment of {decimal_str(op.amount)} for {where} is not its total "
                f"{decimal_str(current.total)}: WooCommerce has no partial payments, only 'paid'"
            )
        return await self._mark_paid(op.order_id, current, op.gateway, op.transaction_id)

    async def _send_invoice(self, op: SendInvoice) -> Applied:
        if self.legacy:
            raise OperationRejected(
                f"the legacy API of shop {self.shop.name!r} cannot email an invoice (order {op.order_id})"
            )
        await self._call("POST", f"/orders/{op.order_id}/actions/send_order_details", {}, retry=False)
        return Applied()

    # ---- creating an order --------------------------------------------------------------------
    async def _create_order(self, op: CreateOrder, marker: str) -> Applied:
        order = op.order
        if order is None:
            raise OperationRejected(f"no source order given for {op.source_shop}:{op.source_order_id}")
        products = [await self._product_for(op, line) for line in order.line_items]
        source = f"{op.source_shop}:{order.external_id}"
        status = platform_value("order_status", "woocommerce", order.status.value) or "pending"
        lines = []
        for line, (product_id, variation_id) in zip(order.line_items, products, strict=True):
            item: dict[str, Any] = {"product_id": product_id, "quantity": int(line.quantity)}
            if variation_id and not self.legacy:
                item["variation_id"] = variation_id
            item["subtotal"], item["total"] = decimal_str(line.subtotal), decimal_str(line.total)
            lines.append(item)
        shipping = [
            {
                "method_id": s.method_id or "",
                "method_title": s.method_title or "",
                "total": decimal_str(s.total),
            }
            for s in order.shipping_lines
        ]
        fee_name = "title" if self.legacy else "name"
        fees = [{fee_name: f.name, "total": decimal_str(f.total)} for f in order.fee_lines]
        billing = _address(order.billing, email=order.customer_email)
        delivery = _address(order.shipping, email=None)
        body: dict[str, Any] = {"status": status, "currency": order.currency, "line_items": lines}
        body |= {"shipping_lines": shipping, "fee_lines": fees}
        if self.legacy:
            body |= {
                "billing_address": billing,
                "shipping_address": delivery,
                "note": order.customer_note or "",
            }
            body["order_meta"] = {LEGACY_MARKER_KEY: marker, LEGACY_SOURCE_KEY: source}
        else:
            body |= {"billing": billing, "shipping": delivery, "customer_note": order.customer_note or ""}
            body["set_paid"] = False
            body["meta_data"] = [{"key": MARKER_KEY, "value": marker}, {"key": SOURCE_KEY, "value": source}]
        data = await self._call("POST", "/orders", self._wrap("order", body), retry=False)
        created = self._unwrap("order", data, "/orders")
        order_id = str(self._field(created, "id", "/orders"))
        return Applied(ids={"order_id": order_id}, created=self._answered(created))

    def _answered(self, raw: dict[str, Any]) -> Order | None:
        """The created order as the creation answered it (no notes or refunds: a new order has none of
        its own); None when the answer does not map (the replica's state is then read back instead)."""
        try:
            return load_mapping(f"woocommerce_{self.shop.api_version}").map(
                {**raw, "_notes": [], "_refunds": []}, self._mapping_context()
            )
        except MappingError as exc:
            log.warning("writer.created_answer_unmapped", shop=self.shop.name, error=str(exc))
            return None

    async def _product_for(self, op: CreateOrder, line: LineItem) -> tuple[int, int]:
        """(product id, variation id or 0) in this shop for a source line: the route's map by source
        product id or SKU first, then a lookup by SKU; or the whole order is refused."""
        where = f"line {line.external_id} of {op.source_shop}:{op.source_order_id}"
        mapped = op.mapped_product(line)
        if mapped is not None:
            return await self._mapped(mapped[0], mapped[1], where)
        sku = line.sku
        if not sku:
            raise OperationRejected(
                f"{where} ({op.source_names(line)}) is not in the route's product_ids and has no SKU to "
                f"look up, so no product of shop {self.shop.name!r} matches it"
            )
        if sku not in self._products:
            self._products[sku] = await self._lookup_sku(sku)
        found = self._products[sku]
        if found is None:
            raise OperationRejected(f"SKU {sku!r} ({where}) is not a product of shop {self.shop.name!r}")
        return found

    async def _mapped(self, value: str, named: str, where: str) -> tuple[int, int]:
        """A product the route's map names (``"12"``, or ``"12:34"`` for a variation of product 12),
        checked to exist: WooCommerce would take an unknown id and create an empty line."""
        parent, _, variation = value.partition(":")
        product_id = _order_int(parent)
        key = f"id:{product_id}"
        if key not in self._products:
            try:
                path = f"/products/{product_id}"
                await self._call("GET", path)
                self._products[key] = (product_id, 0)
            except NotFoundError:
                self._products[key] = None
        if self._products[key] is None:
            raise OperationRejected(
                f"the route maps {named} ({where}) to product {product_id}, which shop "
                f"{self.shop.name!r} does not have"
            )
        return product_id, _order_int(variation) if variation else 0

    async def _lookup_sku(self, sku: str) -> tuple[int, int] | None:
        if self.legacy:
            data = await self._call("GET", "/products", params={"filter[sku]": sku})
            listed = self._field(data, "products", "/products")
        else:
            listed = await self._call("GET", "/products", params={"sku": sku})
        for product in listed if isinstance(listed, list) else []:
            if isinstance(product, dict) and product.get("sku") == sku and product.get("id"):
                parent = int(product.get("parent_id") or 0)
                # The legacy API takes a variation by its own id as product_id.
                if parent and not self.legacy:
                    return parent, int(product["id"])
                return int(product["id"]), 0
        return None


async def _nothing() -> None:
    return None


async def _outcome(call: Any) -> Applied | Exception:
    try:
        return await call
    except (HttpError, OperationRejected) as exc:
        return exc


def _order_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise OperationRejected(f"{value!r} is not a WooCommerce id (a number)") from None


def _gateway(current: Order, gateway: str | None) -> tuple[str | None, str | None]:
    for payment in current.payments:
        if gateway is None or payment.gateway == gateway:
            return gateway or payment.gateway, payment.gateway_name
    return gateway, None


def _address(address: Address | None, *, email: str | None) -> dict[str, str]:
    """A canonical address in WooCommerce's fields: country and state as codes."""
    if address is None:
        return {"email": email} if email else {}
    fields = {
        "first_name": address.first_name,
        "last_name": address.last_name,
        "company": address.company,
        "address_1": address.line1,
        "address_2": address.line2,
        "city": address.city,
        "state": address.state_code,
        "postcode": address.postcode,
        "country": address.country_code,
        "phone": address.phone,
    }
    if email is not None or address.email:
        fields["email"] = address.email or email
    return {k: v for k, v in fields.items() if v}


def _refund_lines(op: CreateRefund, current: Order) -> list[dict[str, Any]]:
    """REST v3 refund lines for the op's lines that name a target line; a line's tax goes to its one
    rate, or is split over its rates in proportion (the last takes the rounding)."""
    by_id = {line.external_id: line for line in current.line_items}
    out: list[dict[str, Any]] = []
    for line in op.lines:
        if not line.line_item_id:
            continue
        item: dict[str, Any] = {
            "id": _order_int(line.line_item_id),
            "quantity": int(line.quantity),
            "refund_total": decimal_str(line.amount),
        }
        target = by_id.get(line.line_item_id)
        if line.tax and target is not None and target.taxes:
            item["refund_tax"] = _split_tax(line.tax, [(t.rate_id, t.total) for t in target.taxes])
        out.append(item)
    return out


def _split_tax(tax: Decimal, rates: list[tuple[str, Decimal]]) -> list[dict[str, str]]:
    whole = sum((total for _, total in rates), Decimal(0))
    if not whole:
        return [{"id": rates[0][0], "refund_total": decimal_str(tax)}]
    shares: list[dict[str, str]] = []
    left = tax
    for rate, total in rates[:-1]:
        share = (tax * total / whole).quantize(Decimal("0.01"))
        left -= share
        shares.append({"id": rate, "refund_total": decimal_str(share)})
    shares.append({"id": rates[-1][0], "refund_total": decimal_str(left)})
    return shares


REFUNDED = "refunded"
"""Never written as a status: WooCommerce answers it by refunding whatever is left itself
(``wc_order_fully_refunded``), with no marker and no check of what ordersync already refunded."""


def _refunded_refusal(order_id: str) -> OperationRejected:
    return OperationRejected(
        f"order {order_id}: status 'refunded' is not written to WooCommerce, which would create its own "
        "refund of what is left; send the refund (`ordersync push refund`) and WooCommerce sets the status"
    )
