"""Canonical operations as WebCommander calls: the external-app API for most, the v4 admin API for
what only it can do (customer-visible comments, invoices, a real cancel).

Every POST is sent once (``retry=False``) with ``Idempotency-Key: <marker>``: a resend by the outbox
carries the same key and the same body, so a shop that honours the header answers it without doing
the write twice. Bodies are therefore built only from the operation and the order it names, never from
the clock. Whatever the shop would refuse, or must not receive (an unmapped SKU, a refund larger than
what a payment has left, another currency), is refused here with ``OperationRejected`` before any
request; money is ``Decimal`` throughout and leaves as a plain string ("12.50"), never a float.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx
import structlog

from ordersync.config import WebCommanderShop
from ordersync.errors import BadResponseError, HttpError
from ordersync.http import HttpPolicy, JsonResponse, build_client, redact_url
from ordersync.mapping import MappingContext, MappingError, load_mapping, minor_units
from ordersync.models import Address, Order, PaymentStatus, Platform
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
from ordersync.platforms.webcommander.client import WebCommanderClient
from ordersync.platforms.webcommander.extract import newest_orders
from ordersync.platforms.webcommander.oauth2 import ClientCredentialsAuth

log = structlog.get_logger("ordersync.webcommander.writer")

V4_ORDERS = "/api/v4/admin/orders"
PAYMENT_DATE = "%Y-%m-%d %H:%M:%S"
RECENT = 100
"""How many of the newest orders are searched for one an interrupted order-create made."""


def _id_value(order_id: str) -> int | str:
    """The v4 bodies name orders by integer id; a non-numeric id is passed as given."""
    return int(order_id) if order_id.isdigit() else order_id


class WebCommanderWriter:
    """The ``Writer`` for one WebCommander shop. ``transport`` serves both hosts in tests."""

    def __init__(
        self,
        shop: WebCommanderShop,
        policy: HttpPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.shop = shop
        self.policy = policy
        self.replays_keys = shop.idempotency_keys
        self._reader = WebCommanderClient(shop, policy, transport=transport)
        self._admin: httpx.AsyncClient | None = None
        self.auth: ClientCredentialsAuth | None = None
        if shop.admin_api is not None:
            admin = shop.admin_api
            self.auth = ClientCredentialsAuth(
                admin.base_url,
                admin.client_id.get_secret_value(),
                admin.client_secret.get_secret_value(),
                shop=shop.name,
            )
            self._admin = build_client(
                admin.base_url, policy, transport=transport, max_connections=2, auth=self.auth
            )
        self._context = MappingContext(
            platform=Platform.WEBCOMMANDER,
            shop=shop.name,
            timezone=shop.zone,
            currency=shop.currency,
            country_codes=shop.country_codes,
            state_codes=shop.state_codes,
        )

    async def __aenter__(self) -> WebCommanderWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._reader.aclose()
        if self._admin is not None:
            await self._admin.aclose()

    # -- Writer ---------------------------------------------------------------------------------------
    async def fetch(self, order_id: str) -> Order:
        raw = await self._reader.order(order_id)
        return load_mapping("webcommander").map(raw, self._context)

    def _answered(self, raw: Any) -> Order | None:
        """The created order as order-create answered it; None when the answer does not map (the
        replica's state is then read back instead)."""
        try:
            return load_mapping("webcommander").map(raw, self._context)
        except MappingError as exc:
            log.warning("writer.created_answer_unmapped", shop=self.shop.name, error=str(exc))
            return None

    async def find_created(self, op: CreateOrder, marker: str, since: datetime) -> list[str]:
        """WebCommander keeps nothing searchable to leave a marker in (no order meta, no search by
        note), so an earlier attempt's order is recognised by what it was sent: among the newest
        orders, those created since ``since`` with this billing email, exactly these products and
        quantities, and this grand total. The outbox leaves out the ones already linked and refuses
        to choose between two. The ``Idempotency-Key`` header covers a shop that honours it."""
        body = order_create_body(op, self.shop)
        wanted = sorted((str(i["productId"]), str(i["quantity"])) for i in body["items"])
        email = (body.get("billingAddress") or {}).get("email")
        total = op.order.total if op.order is not None else None
        mapper = load_mapping("webcommander")
        found: list[str] = []
        for raw in await newest_orders(self._reader, RECENT):
            try:
                order = mapper.map(raw, self._context)
            except MappingError:
                continue
            if order.created_at < since or order.customer_email != email or order.total != total:
                continue
            lines = sorted((str(line.product_id), str(int(line.quantity))) for line in order.line_items)
            if lines == wanted:
                found.append(order.external_id)
        return found

    async def apply(self, op: Operation, marker: str, current: Order | None) -> Applied:
        match op:
            case SetStatus():
                await self._post_app("change-order-Status", {"id": op.order_id, "status": op.value}, marker)
                return Applied()
            case SetPaymentStatus():
                body = {"id": op.order_id, "status": op.value}
                await self._post_app("change-order-payment-status", body, marker)
                return Applied()
            case AddComment():
                return await self._comment(op, marker)
            case CreateRefund():
                return await self._refund(op, marker, current or await self.fetch(op.order_id))
            case RecordPayment():
                return await self._payment(op, marker, current)
            case CancelOrder():
                if self._admin is None:
                    body = {"id": op.order_id, "status": "cancelled"}
                    await self._post_app("change-order-Status", body, marker)
                else:
                    await self._post_admin(f"{op.order_id}/cancel", None, marker, allow_empty=True)
                return Applied()
            case SendInvoice():
                return await self._invoice(op, marker, current)
            case CreateOrder():
                body = order_create_body(op, self.shop)
                data = await self._post_app("order-create", body, marker)
                created = data.get("order") if isinstance(data, dict) else None
                order_id = str(self._field(created, "id", "order-create"))
                return Applied(ids={"order_id": order_id}, created=self._answered(created))
        raise OperationRejected(f"WebCommander cannot apply {type(op).__name__}")  # pragma: no cover

    # -- operations -----------------------------------------------------------------------------------
    async def _comment(self, op: AddComment, marker: str) -> Applied:
        if not op.customer_visible:
            body = {"orderId": op.order_id, "message": op.text}
            data = await self._post_app("order-comment-add", body, marker)
            return Applied(ids={"comment_id": str(self._field(data, "id", "order-comment-add"))})
        if self._admin is None:
            raise OperationRejected(
                f"shop {self.shop.name!r}: a comment visible to the customer needs the v4 admin API; "
                "add admin_api credentials (base_url, client_id, client_secret) to the shop's config"
            )
        body = {"id": _id_value(op.order_id), "content": op.text, "flagged": True}
        data = await self._post_admin(f"{op.order_id}/comments", body, marker)
        comments = data.get("comments") if isinstance(data, dict) else None
        ours = [c for c in comments or [] if isinstance(c, dict) and c.get("content") == op.text]
        if not ours:
            return Applied()  # accepted, but the answer does not show which comment it made
        return Applied(ids={"comment_id": str(self._field(ours[-1], "id", "comments"))})

    async def _refund(self, op: CreateRefund, marker: str, current: Order) -> Applied:
        """order-payment-refund answers the refunded payment's id, not the refund's: the refund entry is
        found by reading the order again (a read, so safe); if that fails or is ambiguous the outbox
        recognises the refund by its amount instead."""
        payment_id = choose_payment(op, current)
        body = {"id": payment_id, "amount": decimal_str(op.amount)}
        await self._post_app("order-payment-refund", body, marker)
        known = {r.external_id for r in current.refunds}
        try:
            after = await self.fetch(op.order_id)
        except (HttpError, MappingError) as exc:
            log.warning("webcommander.refund_unread", shop=self.shop.name, order=op.order_id, error=str(exc))
            return Applied()
        new = [
            r
            for r in after.refunds
            if r.external_id not in known and r.payment_id == payment_id and r.amount == op.amount
        ]
        return Applied(ids={"refund_id": str(new[0].external_id)}) if len(new) == 1 else Applied()

    async def _payment(self, op: RecordPayment, marker: str, current: Order | None) -> Applied:
        """make-order-payment as the document shows it: always with a ``date`` (shop-local
        ``yyyy-MM-dd HH:mm:ss``), taken from the operation so that a resend carries the same body; an
        amount above what the order still owes is refused before anything is sent."""
        current = current or await self.fetch(op.order_id)
        if op.currency is not None and op.currency != current.currency:
            raise OperationRejected(
                f"payment of {decimal_str(op.amount)} {op.currency} on order {op.order_id}: the order is "
                f"in {current.currency}; WebCommander records payments in the order's currency only"
            )
        if op.paid_at is None:
            raise OperationRejected(
                f"payment on order {op.order_id} has no time: make-order-payment needs a date"
            )
        paid = sum((p.amount for p in current.payments if p.status in REFUNDABLE), Decimal(0))
        due = current.total - paid
        if op.amount > due:
            raise OperationRejected(
                f"payment of {decimal_str(op.amount)} on order {op.order_id} is more than the "
                f"{decimal_str(max(due, Decimal(0)))} it still owes (total {decimal_str(current.total)}, "
                f"paid {decimal_str(paid)})"
            )
        body: dict[str, Any] = {
            "orderId": op.order_id,
            "paymentGateway": op.gateway or self.shop.payment_gateway,
            "date": op.paid_at.astimezone(self.shop.zone).strftime(PAYMENT_DATE),
            "amount": decimal_str(op.amount),
            "isNotify": "false",
        }
        data = await self._post_app("make-order-payment", body, marker)
        return Applied(ids={"payment_id": str(self._field(data, "id", "make-order-payment"))})

    async def _invoice(self, op: SendInvoice, marker: str, current: Order | None) -> Applied:
        if self._admin is None:
            raise OperationRejected(
                f"shop {self.shop.name!r}: sending an invoice needs the v4 admin API; add admin_api "
                "credentials (base_url, client_id, client_secret) to the shop's config"
            )
        status = op.payment_status or (current.payment_status_raw if current is not None else None)
        body = {
            "order_id": op.order_id,
            "payment_settings": {"payment_method_options": None},
            "payment_status": status,
            "notes": op.notes,
        }
        await self._post_admin(f"{op.order_id}/send-invoice", body, marker)
        return Applied()

    # -- sending --------------------------------------------------------------------------------------
    async def _post_app(self, endpoint: str, body: dict[str, Any], marker: str) -> Any:
        result = await self._reader.post(endpoint, body, headers={"Idempotency-Key": marker})
        self._check_envelope(result, endpoint)
        return result.data

    async def _post_admin(
        self, path: str, body: dict[str, Any] | None, marker: str, *, allow_empty: bool = False
    ) -> Any:
        assert self._admin is not None
        result = await self.policy.request_json(
            self._admin,
            "POST",
            f"{V4_ORDERS}/{path}",
            json=body,
            headers={"Idempotency-Key": marker},
            retry=False,
            allow_empty=allow_empty,
        )
        self._check_envelope(result, path)
        return result.data

    def _check_envelope(self, result: JsonResponse, what: str) -> None:
        """A 200 whose envelope says ``"status": "error"`` is a refusal, whatever the status code says."""
        data = result.data
        if isinstance(data, dict) and data.get("status") not in (None, "success"):
            raise BadResponseError(
                f"{what} answered status={data.get('status')!r}: {str(data.get('message'))[:200]}",
                url=redact_url(result.response.request.url),
                status=result.response.status_code,
                shop=self.shop.name,
            )

    def _field(self, data: Any, key: str, what: str) -> Any:
        if not isinstance(data, dict) or data.get(key) is None:
            raise BadResponseError(
                f"{what} answer has no {key!r}", url=self.shop.base_url, status=200, shop=self.shop.name
            )
        return data[key]


# -- refunds --------------------------------------------------------------------------------------------
REFUNDABLE = frozenset({PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED})
"""A payment marked ``refunded`` is left alone even with nothing recorded against it: the documents'
own examples mark payments refunded without refund entries, so its money may already be back."""


def choose_payment(op: CreateRefund, current: Order) -> str:
    """The payment a refund goes against: ``op.payment_id``, or the first paid payment with enough
    left. WebCommander refunds one payment per call; a refund spanning payments is refused, not split."""
    where = f"refund of {decimal_str(op.amount)} {op.currency or current.currency} on order {op.order_id}"
    if op.currency is not None and op.currency != current.currency:
        raise OperationRejected(f"{where}: the order is in {current.currency}, the refund in {op.currency}")
    refunded: dict[str, Decimal] = {}
    for refund in current.refunds:
        if refund.payment_id is not None:
            refunded[refund.payment_id] = refunded.get(refund.payment_id, Decimal(0)) + refund.amount
    payments = [p for p in current.payments if p.external_id is not None]

    def left(payment_id: str, amount: Decimal) -> Decimal:
        return amount - refunded.get(payment_id, Decimal(0))

    if op.payment_id is not None:
        chosen = next((p for p in payments if p.external_id == op.payment_id), None)
        if chosen is None:
            raise OperationRejected(f"{where}: the order has no payment {op.payment_id}")
        if chosen.status not in REFUNDABLE:
            raise OperationRejected(
                f"{where}: payment {op.payment_id} is {chosen.status_raw or chosen.status.value}, not paid"
            )
        remaining = left(op.payment_id, chosen.amount)
        if op.amount > remaining:
            raise OperationRejected(
                f"{where}: payment {op.payment_id} has only {decimal_str(remaining)} left to refund "
                f"(paid {decimal_str(chosen.amount)}, refunded {decimal_str(chosen.amount - remaining)})"
            )
        return op.payment_id
    paid = [p for p in payments if p.status in REFUNDABLE]
    for payment in paid:
        assert payment.external_id is not None
        if left(payment.external_id, payment.amount) >= op.amount:
            return payment.external_id
    if not paid:
        raise OperationRejected(f"{where}: the order has no paid payment to refund")
    listed = ", ".join(
        f"payment {p.external_id}: {decimal_str(left(p.external_id or '', p.amount))}" for p in paid
    )
    raise OperationRejected(f"{where}: no paid payment has that much left to refund ({listed})")


# -- order-create -------------------------------------------------------------------------------------------
def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def _money(value: Decimal, q: Decimal) -> str:
    return decimal_str(value.quantize(q))


def _unit_prices(gross: Decimal, quantity: int, q: Decimal) -> list[tuple[int, Decimal]]:
    """``gross`` over ``quantity`` units as (units, tax-inclusive unit price) pairs adding up to
    ``gross`` exactly: 10.00 for 3 is 2 x 3.33 and 1 x 3.34, never 3 x 3.33."""
    unit = (gross / quantity).quantize(q, rounding=ROUND_DOWN)
    rest = gross - unit * quantity
    if rest == 0 or quantity == 1:
        return [(quantity, unit + rest)]
    return [(quantity - 1, unit), (1, unit + rest)]


def _address(address: Address, shop: WebCommanderShop, role: str, email: str | None) -> dict[str, Any]:
    """An address in order-create's words; country and state become this shop's ids from the config."""
    code = (address.country_code or "").upper()
    if not code:
        raise OperationRejected(f"the {role} address has no country code to look up in country_ids")
    country = shop.country_ids.get(code)
    if country is None:
        raise OperationRejected(
            f"country {code!r} of the {role} address has no WebCommander id: add it under "
            f"country_ids in shop {shop.name!r}'s config ({code}: <id>)"
        )
    body: dict[str, Any] = {
        "firstName": address.first_name,
        "lastName": address.last_name,
        "companyName": address.company,
        "addressLine1": address.line1,
        "addressLine2": address.line2,
        "city": address.city,
        "postCode": address.postcode,
        "phone": address.phone,
        "mobile": address.mobile,
        "email": address.email or email,
        "countryId": country,
    }
    if address.state_code:
        key = f"{code}-{address.state_code.upper()}"
        state = shop.state_ids.get(key)
        if state is None:
            raise OperationRejected(
                f"state {key!r} of the {role} address has no WebCommander id: add it under "
                f"state_ids in shop {shop.name!r}'s config ('{key}': <id>)"
            )
        body["stateId"] = state
    return {k: v for k, v in body.items() if v is not None}


def order_create_body(op: CreateOrder, shop: WebCommanderShop) -> dict[str, Any]:
    """The order-create body for ``op.order``, or ``OperationRejected`` before anything is sent.

    Unit prices are tax-inclusive, as the document's example (666 becomes 605.45 + 60.55 tax): the shop
    splits out its own tax, and the customer's total stays the source's. Products come only from the
    route's SKU map: the documented API has no product lookup. Fees go in as a surcharge, tax included,
    since order-create takes no fee lines; a total that still differs from the source is refused."""
    order = op.order
    source = f"order {op.source_order_id} of shop {op.source_shop!r}"
    if order is None:
        raise OperationRejected(f"{source}: the order to create was not filled in")
    if not order.line_items:
        raise OperationRejected(f"{source} has no lines to create")
    if order.currency != shop.currency:
        raise OperationRejected(
            f"{source} is in {order.currency}; shop {shop.name!r} sells in {shop.currency} and WebCommander "
            "orders carry no currency of their own"
        )
    q = quantum(order.currency)
    items: list[dict[str, Any]] = []
    gross_total = Decimal(0)
    for n, line in enumerate(order.line_items, start=1):
        what = f"line {n} ({line.name or line.external_id}) of {source}"
        mapped = op.mapped_product(line)
        if mapped is None:
            raise OperationRejected(
                f"{what} ({op.source_names(line)}) has no WebCommander product id in the route's "
                "product_ids or products map; WebCommander's API cannot look a product up by SKU, so "
                "nothing was created"
            )
        product = mapped[0]
        if line.quantity <= 0 or line.quantity != line.quantity.to_integral_value():
            raise OperationRejected(f"{what}: quantity {line.quantity} is not a whole number of units")
        gross = (line.total + line.tax).quantize(q)
        gross_total += gross
        for units, price in _unit_prices(gross, int(line.quantity), q):
            items.append(
                {
                    "productId": _id_value(product),
                    "productName": line.name or line.sku,
                    "productType": "product",
                    "quantity": units,
                    "price": decimal_str(price),
                    "tax": 0,
                    "discount": 0,
                    "isShippable": line.shippable is not False,
                    "isTaxable": line.tax > 0,
                }
            )
    surcharge = order.fee_total + sum((fee.tax for fee in order.fee_lines), Decimal(0))
    sent = gross_total + order.shipping_total + order.shipping_tax + surcharge
    if sent.quantize(q) != order.total.quantize(q):
        raise OperationRejected(
            f"{source}: lines, shipping and fees come to {_money(sent, q)} but the order's total is "
            f"{_money(order.total, q)} {order.currency} (an order-level discount order-create cannot carry?)"
        )
    if order.billing is None:
        raise OperationRejected(f"{source} has no billing address")
    try:
        billing = _address(order.billing, shop, "billing", order.customer_email)
        shipping = _address(order.shipping or order.billing, shop, "shipping", order.customer_email)
    except OperationRejected as exc:
        raise OperationRejected(f"{source}: {exc.reason}") from None
    body: dict[str, Any] = {
        "billingAddress": billing,
        "shippingAddress": shipping,
        "handlingCost": "0",
        "shippingCost": _money(order.shipping_total, q),
        "shippingTax": _money(order.shipping_tax, q),
        "totalSurcharge": _money(surcharge, q),
        "items": items,
    }
    if order.ip_address:
        body["ipAddress"] = order.ip_address
    return body
