"""The sandbox WooCommerce shop's state: orders, refunds and notes, and the writes WooCommerce allows.

Writes behave as on WooCommerce 11: status changes, edits and refunds bump ``date_modified``; adding a
note does not. ``POST orders`` with a product id, variation id or SKU the shop does not have still
creates the order, with an empty line item (no product, nothing to pay), as real shops do.
A refund needs ``api_refund: false`` with the offline gateways (otherwise HTTP 500,
``data`` a bare number), cannot exceed what is left, reads per-rate line taxes from ``refund_tax``
(a ``taxes`` key is ignored), and a refund of everything left sets the order ``refunded``. Orders and
refunds draw ids from one sequence (WordPress posts), so order ids have gaps.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ordersync.sandbox.woocommerce.catalog import (
    BY_ID,
    BY_SKU,
    COUPONS,
    CUSTOM_STATUSES,
    GATEWAYS,
    PAID_STATUSES,
    STATUS_LABELS,
    VARIABLE_PARENTS,
    Product,
)
from ordersync.sandbox.woocommerce.generator import customers, generate, order_key
from ordersync.sandbox.woocommerce.model import (
    ZERO,
    CouponLine,
    FeeLine,
    Line,
    Note,
    Order,
    Refund,
    RefundLine,
    ShippingLine,
    cents,
    price,
)
from ordersync.sandbox.woocommerce.render import Renderer, encode

ALL_STATUSES = (*STATUS_LABELS, *CUSTOM_STATUSES)
DEFAULT_BASE = "http://127.0.0.1"
NO_PRODUCT = Product(0, "", "", ZERO)
"""What a line item holds when the product it named does not exist: nothing, at no price."""


class StoreError(Exception):
    """A refusal with WooCommerce's code, message and ``data`` (a dict, or a bare number on refunds)."""

    def __init__(self, status: int, code: str, message: str, data: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = {"status": status} if data is None else data


def _now() -> datetime:
    return datetime.now(UTC)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise StoreError(400, "rest_invalid_param", "Invalid parameter(s): line_items") from None


def _money(value: Any, field: str) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise StoreError(400, "rest_invalid_param", f"Invalid parameter(s): {field}") from None
    if not amount.is_finite():
        raise StoreError(400, "rest_invalid_param", f"Invalid parameter(s): {field}")
    return cents(amount)


class WooCommerceStore:
    def __init__(
        self,
        orders: int = 100,
        seed: int = 42,
        timezone: str = "Europe/Berlin",
        currency: str = "EUR",
        clock: Callable[[], datetime] | None = None,
        site_url: str | None = None,
    ):
        self.seed = seed
        self.timezone = timezone
        self.currency = currency
        self._clock = clock or _now
        self.site_url = site_url.rstrip("/") if site_url else None
        """WordPress's home URL, which every link in a payload names; None: the request's address."""
        self.renderer = Renderer(timezone)
        self.lock = threading.RLock()
        self.listeners: list[Callable[[str, int], None]] = []
        """Told (topic, order id) after each change: the webhooks' sender listens here."""
        self.orders: dict[int, Order] = {}
        self.customers = customers(seed)
        self.version = 0
        """Bumped on every change; list caches key on it."""
        self._post_id = 26
        self._item_id = 0
        self._meta_id = 100
        self._note_id = 0
        self.sent_emails: list[dict[str, Any]] = []
        """Emails the shop sent through order actions: order id, recipient, template, time."""
        self._v3: dict[str, dict[int, bytes]] = {}
        self._list_cache: dict[Any, list[int]] = {}
        self._stats: tuple[int, dict[int, tuple[int, Order, Decimal]]] = (-1, {})
        generate(self, orders, seed)

    # ---- ids and time ------------------------------------------------------------------------
    def next_post_id(self) -> int:
        self._post_id += 1
        return self._post_id

    def next_item_id(self) -> int:
        self._item_id += 1
        return self._item_id

    def next_meta_id(self) -> int:
        self._meta_id += 1
        return self._meta_id

    def now(self) -> datetime:
        return self._clock().astimezone(UTC).replace(microsecond=0)

    # ---- reading -----------------------------------------------------------------------------
    def order_ids(self) -> list[int]:
        """Every order not in the trash, ascending."""
        with self.lock:
            return sorted(i for i, o in self.orders.items() if o.status != "trash")

    def get(self, order_id: Any) -> Order:
        try:
            key = int(order_id)
        except (TypeError, ValueError):
            key = -1
        order = self.orders.get(key)
        if order is None:
            raise StoreError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return order

    def v3_order(self, order_id: int, base: str = DEFAULT_BASE) -> dict[str, Any]:
        with self.lock:
            return self.renderer.v3_order(self.get(order_id), base)

    def v3_bytes(self, order: Order, base: str) -> bytes:
        cache = self._v3.setdefault(base, {})
        body = cache.get(order.id)
        if body is None:
            body = cache[order.id] = encode(self.renderer.v3_order(order, base))
        return body

    def prerender(self, base: str) -> None:
        """Encode every order once, so serving a page is a join of cached bytes (for benchmarks)."""
        with self.lock:
            for order in self.orders.values():
                self.v3_bytes(order, base)

    def v2_order(self, order_id: int, base: str = DEFAULT_BASE) -> dict[str, Any]:
        with self.lock:
            order = self.get(order_id)
            return self.renderer.v2_order(order, base, self.v2_customer(order))

    def v2_customer(self, order: Order) -> dict[str, Any]:
        billing = dict(order.billing)
        shipping = {k: v for k, v in order.shipping.items() if k != "phone"}
        if not order.customer_id:
            return {
                "id": 0,
                "email": billing.get("email", ""),
                "first_name": billing.get("first_name", ""),
                "last_name": billing.get("last_name", ""),
                "billing_address": billing,
                "shipping_address": shipping,
            }
        person = self.customers[order.customer_id]
        count, last, spent = self._customer_stats()[order.customer_id]
        return {
            "id": order.customer_id,
            "created_at": self.renderer.zulu(person["created"]),
            "email": person["email"],
            "first_name": person["first_name"],
            "last_name": person["last_name"],
            "username": person["username"],
            "role": "customer",
            "last_order_id": last.id,
            "last_order_date": self.renderer.zulu(last.created),
            "orders_count": count,
            "total_spent": f"{spent:.2f}",
            "avatar_url": "https://secure.gravatar.com/avatar/?s=96&d=mm&r=g",
            "billing_address": person["billing"],
            "shipping_address": {k: v for k, v in person["billing"].items() if k not in ("email", "phone")},
        }

    def _customer_stats(self) -> dict[int, tuple[int, Order, Decimal]]:
        """Per customer: order count, latest order and amount spent; recomputed only after a write,
        so a legacy page does not scan the whole shop once per order."""
        if self._stats[0] != self.version:
            stats: dict[int, tuple[int, Order, Decimal]] = {}
            for o in self.orders.values():
                if not o.customer_id:
                    continue
                count, last, spent = stats.get(o.customer_id, (0, o, ZERO))
                if (o.created, o.id) > (last.created, last.id):
                    last = o
                if o.status in ("completed", "processing"):
                    spent += o.total
                stats[o.customer_id] = (count + 1, last, spent)
            self._stats = (self.version, stats)
        return self._stats[1]

    def v3_refunds(self, order_id: int, base: str = DEFAULT_BASE) -> list[dict[str, Any]]:
        with self.lock:
            order = self.get(order_id)
            return [self.renderer.v3_refund(order, r, base) for r in self.refunds_newest_first(order)]

    @staticmethod
    def refunds_newest_first(order: Order) -> list[Refund]:
        return sorted(order.refunds, key=lambda r: (r.created, r.id), reverse=True)

    def v3_notes(self, order_id: int, base: str = DEFAULT_BASE) -> list[dict[str, Any]]:
        with self.lock:
            order = self.get(order_id)
            return [self.renderer.v3_note(order, n, base) for n in self.notes_listed(order)]

    @staticmethod
    def notes_listed(order: Order, kind: str = "any") -> list[Note]:
        """Newest first by the second, ascending ids within one second (what the real shop sends)."""
        notes = [n for n in order.notes if kind == "any" or (kind == "customer") == n.customer_note]
        return sorted(notes, key=lambda n: (-n.created.timestamp(), n.id))

    def all_refunds(self) -> list[tuple[Order, Refund]]:
        found = [(o, r) for o in self.orders.values() for r in o.refunds]
        return sorted(found, key=lambda pair: (pair[1].created, pair[1].id), reverse=True)

    # ---- listing -----------------------------------------------------------------------------
    def listing(self, key: Any, build: Callable[[], list[int]]) -> list[int]:
        """Ids of a list query, cached until the next write."""
        with self.lock:
            cached = self._list_cache.get(key)
            if cached is None or cached[0] != self.version:
                cached = self._list_cache[key] = [self.version, *build()]
            return cached[1:]

    # ---- writes ------------------------------------------------------------------------------
    def insert(self, order: Order) -> None:
        with self.lock:
            self.orders[order.id] = order
            self._touch(order, bump=False)

    def _emit(self, topic: str, order_id: int) -> None:
        for listener in self.listeners:
            listener(topic, order_id)

    def _touch(self, order: Order, *, bump: bool = True, at: datetime | None = None) -> None:
        if bump:
            order.modified = max(order.modified, at or self.now())
            self._emit("order.updated", order.id)
        for cache in self._v3.values():
            cache.pop(order.id, None)
        self.version += 1

    def add_note(
        self,
        order_id: int,
        note: str,
        customer_note: bool = False,
        *,
        at: datetime | None = None,
        author: str = "WooCommerce",
    ) -> Note:
        """Notes are comments: adding one leaves ``date_modified`` alone, as on real shops. A note a
        person writes in the admin carries their name; the system's and the API's say WooCommerce."""
        with self.lock:
            order = self.get(order_id)
            if not isinstance(note, str) or not note.strip():
                raise StoreError(400, "rest_missing_callback_param", "Missing parameter(s): note")
            self._note_id += 1
            created = at or self.now()
            entry = Note(self._note_id, created, note, bool(customer_note), author)
            order.notes.append(entry)
            self._touch(order, bump=False)
            return entry

    def delete_note(self, order_id: int, note_id: int) -> Note:
        with self.lock:
            order = self.get(order_id)
            for note in order.notes:
                if note.id == note_id:
                    order.notes.remove(note)
                    self._touch(order, bump=False)
                    return note
            raise StoreError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")

    def set_status(self, order: Order, status: str, *, at: datetime | None = None) -> None:
        with self.lock:
            if status not in ALL_STATUSES and status != "trash":
                raise StoreError(
                    400,
                    "rest_invalid_param",
                    "Invalid parameter(s): status",
                    {
                        "status": 400,
                        "params": {"status": f"status is not one of {', '.join(ALL_STATUSES)}."},
                    },
                )
            when = at or self.now()
            old = order.status
            if old == status:
                return
            order.status = status
            if status in PAID_STATUSES and order.paid is None:
                order.paid = when
            if status == "completed" and order.completed is None:
                order.completed = when
            if old == "trash" and status != "trash":
                self._emit("order.restored", order.id)  # out of the trash: wp_untrash_post
            labels = {**STATUS_LABELS, **CUSTOM_STATUSES}
            if status != "trash" and old != "trash":
                self.add_note(
                    order.id,
                    f"Order status changed from {labels.get(old, old)} to {labels.get(status, status)}.",
                    at=when,
                )
            self._touch(order, at=when)

    def trash(self, order_id: int, *, at: datetime | None = None) -> Order:
        with self.lock:
            order = self.get(order_id)
            if order.status != "trash":
                order.previous_status = order.status
                self.set_status(order, "trash", at=at)
                self._emit("order.deleted", order.id)  # WooCommerce's hook is wp_trash_post
            return order

    def delete(self, order_id: int) -> Order:
        with self.lock:
            order = self.get(order_id)
            del self.orders[order.id]
            self._touch(order, bump=False)
            self._emit("order.deleted", order.id)
            return order

    def update_order(self, order_id: int, body: dict[str, Any], *, at: datetime | None = None) -> Order:
        """PUT /orders/<id>: status, addresses, notes to the customer, payment fields, meta, set_paid."""
        with self.lock:
            order = self.get(order_id)
            when = at or self.now()
            changed = False
            if "status" in body and body["status"] != order.status:
                self.set_status(order, str(body["status"]), at=when)
                if body["status"] == "refunded":
                    self._fully_refunded(order, when)
            for name in ("billing", "shipping"):
                if isinstance(body.get(name), dict):
                    current = getattr(order, name)
                    merged = {**current, **{k: str(v) for k, v in body[name].items() if k in current}}
                    if merged != current:
                        setattr(order, name, merged)
                        changed = True
                        if name == "shipping" and merged.get("country") != current.get("country"):
                            self._reprice(order)
            for name in ("customer_note", "transaction_id", "payment_method", "payment_method_title"):
                if name in body and str(body[name]) != getattr(order, name):
                    setattr(order, name, str(body[name]))
                    changed = True
            if isinstance(body.get("meta_data"), list):
                changed |= self._merge_meta(order, body["meta_data"])
            if body.get("set_paid") and order.paid is None:
                order.paid = when
                if order.status in ("pending", "on-hold", "failed"):
                    self.set_status(order, "processing", at=when)
                changed = True
            if changed:
                self._touch(order, at=when)
            return order

    def _merge_meta(self, order: Order, entries: list[Any]) -> bool:
        changed = False
        for entry in entries:
            if not isinstance(entry, dict) or "key" not in entry:
                continue
            for i, (meta_id, key, _) in enumerate(order.meta):
                if key == entry["key"]:
                    order.meta[i] = (meta_id, key, entry.get("value"))
                    break
            else:
                order.meta.append((self.next_meta_id(), str(entry["key"]), entry.get("value")))
            changed = True
        return changed

    def _reprice(self, order: Order) -> None:
        price(order)
        for rate, _, _ in order.tax_rows():
            order.tax_line_ids.setdefault(rate, self.next_item_id())

    def create_order(self, body: dict[str, Any], *, at: datetime | None = None) -> Order:
        """POST /orders in the v3 input shape; taxes from the shipping address and product classes."""
        with self.lock:
            when = at or self.now()
            billing = self._address(body.get("billing"), with_email=True)
            shipping = self._address(body.get("shipping"), with_email=False)
            if not shipping.get("country"):
                shipping = {**{k: v for k, v in billing.items() if k != "email"}}
            gateway = str(body.get("payment_method") or "")
            order = Order(
                id=self.next_post_id(),
                status="pending",
                created=when,
                modified=when,
                customer_id=int(body.get("customer_id") or 0),
                billing=billing,
                shipping=shipping,
                payment_method=gateway,
                payment_method_title=str(body.get("payment_method_title") or GATEWAYS.get(gateway, "")),
                order_key=order_key(random.Random(self._post_id)),
                currency=str(body.get("currency") or self.currency),
                lines=[],
                created_via="rest-api",
                customer_note=str(body.get("customer_note") or ""),
                transaction_id=str(body.get("transaction_id") or ""),
            )
            for item in body.get("line_items") or []:
                order.lines.append(self._new_line(item))
            for item in body.get("shipping_lines") or []:
                order.shipping_lines.append(
                    ShippingLine(
                        self.next_item_id(),
                        str(item.get("method_id") or ""),
                        str(item.get("method_title") or ""),
                        _money(item.get("total") or "0", "shipping_lines"),
                    )
                )
            for item in body.get("fee_lines") or []:
                order.fees.append(
                    FeeLine(
                        self.next_item_id(),
                        str(item.get("name") or "Fee"),
                        _money(item.get("total") or "0", "fee_lines"),
                    )
                )
            for item in body.get("coupon_lines") or []:
                code = str(item.get("code") or "").lower()
                if code not in COUPONS:
                    raise StoreError(
                        400, "woocommerce_rest_invalid_coupon", f'Coupon "{code}" does not exist!'
                    )
                order.coupons.append(CouponLine(self.next_item_id(), code, self.next_meta_id()))
            self._reprice(order)
            if isinstance(body.get("meta_data"), list):
                self._merge_meta(order, body["meta_data"])
            self.insert(order)
            self._emit("order.created", order.id)
            status = str(body.get("status") or "pending")
            if body.get("set_paid"):
                # payment_complete() runs in a second save: paid and modified one second after created,
                # and stock reduced for each line, as recorded for order 165.
                order.paid = when + timedelta(seconds=1)
                status = "processing" if status == "pending" else status
                for line in order.lines:
                    line.meta.append((self.next_meta_id(), "_reduced_stock", str(line.quantity)))
            if status != "pending":
                self.set_status(order, status, at=when + timedelta(seconds=1))
            return order

    def _new_line(self, item: Any) -> Line:
        if not isinstance(item, dict):
            raise StoreError(400, "rest_invalid_param", "Invalid parameter(s): line_items")
        product: Product | None
        if item.get("sku"):
            product = BY_SKU.get(str(item["sku"]))
        elif item.get("variation_id"):
            product = BY_ID.get(_int(item["variation_id"]))
        elif item.get("product_id"):
            product = BY_ID.get(_int(item["product_id"]))
        else:
            raise StoreError(
                400, "woocommerce_rest_required_product_reference", "Product ID or SKU is required."
            )
        if _int(item.get("product_id")) in VARIABLE_PARENTS and not item.get("variation_id"):
            raise StoreError(400, "woocommerce_rest_invalid_product_id", "Product ID or SKU is invalid.")
        # wc_get_product() of an unknown id is false and the controller goes on: the line is kept empty.
        product = product or NO_PRODUCT
        try:
            quantity = int(item.get("quantity", 1))
        except (TypeError, ValueError):
            raise StoreError(400, "rest_invalid_param", "Invalid parameter(s): line_items") from None
        if quantity < 1:
            raise StoreError(
                400, "woocommerce_rest_invalid_product_quantity", "Product quantity must be a positive float."
            )
        line = Line(self.next_item_id(), product, quantity)
        line.meta = [(self.next_meta_id(), key, value) for key, _, value in product.attributes]
        return line

    @staticmethod
    def _address(given: Any, *, with_email: bool) -> dict[str, str]:
        fields = [
            "first_name",
            "last_name",
            "company",
            "address_1",
            "address_2",
            "city",
            "state",
            "postcode",
            "country",
        ]
        fields += ["email", "phone"] if with_email else ["phone"]
        given = given if isinstance(given, dict) else {}
        return {f: str(given.get(f) or "") for f in fields}

    def _fully_refunded(self, order: Order, when: datetime) -> None:
        """WooCommerce's ``wc_order_fully_refunded`` hook: an order whose status is set to refunded gets
        a refund of whatever was left, made by WooCommerce itself (no gateway, no lines), and a note.
        This is how writing the status moves money behind the writer's back."""
        left = order.total - order.refunded
        if left <= 0:
            return
        self.create_refund(
            order.id, {"amount": str(left), "reason": "Order fully refunded.", "api_refund": False}, at=when
        )
        self.add_note(
            order.id,
            "Order status set to refunded. To return funds to the customer you will need to issue a "
            "refund through your payment gateway.",
            at=when,
        )

    def create_refund(self, order_id: Any, body: dict[str, Any], *, at: datetime | None = None) -> Refund:
        """POST /orders/<id>/refunds. Failures are HTTP 500 with ``data`` a bare number, as recorded."""
        with self.lock:
            try:
                order = self.get(order_id)
            except StoreError:
                raise StoreError(500, "woocommerce_rest_invalid_order_id", "Invalid order ID.", 404) from None
            amount = _money(body.get("amount", "0"), "amount")
            left = order.total - order.refunded
            # wc_create_refund refuses a negative amount or more than is left; a zero refund is
            # allowed (merchants use it to restock items), so routing must cope with one.
            if amount < 0 or amount > left:
                raise StoreError(
                    500, "woocommerce_rest_cannot_create_order_refund", "Invalid refund amount.", 500
                )
            if body.get("api_refund", True) not in (False, "false", 0, "0"):
                raise StoreError(
                    500,
                    "woocommerce_rest_cannot_create_order_refund",
                    "The payment gateway for this order does not support automatic refunds.",
                    500,
                )
            lines: list[RefundLine] = []
            for item in body.get("line_items") or []:
                line = self._refund_line(order, item)
                if line.quantity or line.total or any(line.taxes.values()):
                    lines.append(line)  # wc_create_refund skips an item that refunds nothing
            when = at or self.now()
            full = amount == left
            refund = Refund(
                id=self.next_post_id(),
                created=when,
                amount=amount,
                reason=str(body.get("reason") or ""),
                lines=lines,
                tax_line_ids={},
                meta_id=self.next_meta_id(),
                full=full,
            )
            for rate in sorted({r for rl in lines for r in rl.taxes}):
                refund.tax_line_ids[rate] = self.next_item_id()
            for entry in body.get("meta_data") or []:
                if isinstance(entry, dict) and entry.get("key"):
                    refund.meta.append((self.next_meta_id(), str(entry["key"]), entry.get("value")))
            order.refunds.append(refund)
            for rl in lines:
                if isinstance(rl.line, Line):
                    self.add_note(order.id, f"Item #{rl.line.product.id} stock increased.", at=when)
            if full:
                self.set_status(order, "refunded", at=when)
            self._touch(order, at=when)
            return refund

    def send_order_details(
        self, order_id: Any, email: str | None = None, force: bool = False, *, at: datetime | None = None
    ) -> str:
        """``POST orders/<id>/actions/send_order_details`` (WooCommerce 9.8+): the customer invoice email
        to the billing address; ``email`` sets one only where none is set, or with ``force``. The email is
        recorded in ``sent_emails`` and as a private note; the answer's message is returned."""
        with self.lock:
            order = self.get(order_id)
            current = order.billing.get("email", "")
            message = ""
            if email and email != current:
                if current and not force:
                    raise StoreError(
                        400,
                        "woocommerce_rest_email_update_not_forced",
                        "The order already has a billing email. To update it, set force_email_update.",
                    )
                order.billing = {**order.billing, "email": email}
                self._touch(order, at=at)
                message = f"Billing email updated to {email}. "
                current = email
            if not current:
                raise StoreError(
                    400, "woocommerce_rest_missing_email", "Order does not have an email address."
                )
            when = at or self.now()
            self.sent_emails.append(
                {"order_id": order.id, "to": current, "template": "customer_invoice", "at": when}
            )
            message += f"Order details sent to {current}, via REST API."
            self.add_note(order.id, f"Order details sent to {current}, via REST API.", at=when)
            return message

    def _refund_line(self, order: Order, item: Any) -> RefundLine:
        if not isinstance(item, dict):
            raise StoreError(500, "woocommerce_rest_cannot_create_order_refund", "Invalid refund line.", 500)
        wanted = int(item.get("id") or 0)
        items: list[Line | ShippingLine | FeeLine] = [*order.lines, *order.shipping_lines, *order.fees]
        line = next((x for x in items if x.id == wanted), None)
        if line is None:
            raise StoreError(500, "woocommerce_rest_cannot_create_order_refund", "Invalid refund line.", 500)
        quantity = int(item.get("quantity") or 0)
        total = _money(item.get("refund_total") or "0", "refund_total")
        taxes: dict[int, Decimal] = {}
        for tax in item.get("refund_tax") or []:  # "taxes" is silently ignored, as on real shops
            if isinstance(tax, dict) and int(tax.get("id") or 0) in line.taxes:
                taxes[int(tax["id"])] = _money(tax.get("refund_total") or "0", "refund_tax")
        return RefundLine(self.next_item_id(), line, quantity, total, taxes, self.next_meta_id())

    def delete_refund(self, order_id: int, refund_id: int) -> Refund:
        with self.lock:
            order = self.get(order_id)
            for refund in order.refunds:
                if refund.id == refund_id:
                    order.refunds.remove(refund)
                    self._touch(order)
                    return refund
            raise StoreError(404, "woocommerce_rest_invalid_id", "Invalid ID.")
