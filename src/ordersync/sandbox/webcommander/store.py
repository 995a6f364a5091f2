"""The sandbox shop's state: orders by id, their pre-encoded JSON, and the writes the API offers.

Each order's list-form JSON is encoded once and cached, so a page is a join of cached bytes: serving
250 orders costs almost nothing, which keeps the sandbox out of what a benchmark measures. A write
drops that order's cache entry.
"""

from __future__ import annotations

import copy
import threading
from bisect import bisect_left, insort
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from ordersync.sandbox.webcommander.generator import (
    CENT,
    COUNTRIES,
    STATES,
    TAX_RATE,
    dec,
    generate_orders,
    money,
    stamp,
    summarize,
)

ORDER_STATUSES = ("pending", "processing", "completed", "cancelled")
"""What change-order-Status takes: the document shows completed and cancelled (orders read pending)."""
PAYMENT_STATUSES = ("completed", "cancelled")
"""What change-order-payment-status takes, as the document shows; ``completed`` reads back as paid."""

PAYMENT_GATEWAYS: list[dict[str, Any]] = [
    {
        "isPromotional": False,
        "code": code,
        "flatSurcharge": 0.0,
        "successMessage": None,
        "version": None,
        "isDefault": code == "PIS",
        "availableToCustomers": [],
        "isSurChargeApplicable": False,
        "surchargeType": "no_surcharge",
        "availableToCustomerGroups": [],
        "zone": None,
        "percentSurcharge": 0.0,
        "availableFor": "everyone",
        "isEnabled": True,
        "name": name,
        "pendingMessage": None,
        "information": None,
        "id": gid,
        "updated": "2023-05-10T07:11:01",
        "surchargeRange": [],
    }
    for gid, (code, name) in enumerate(
        [("PIS", "Pay In Store"), ("CRD", "Credit Card"), ("PAYPAL", "PayPal"), ("BNK", "Bank Transfer")],
        start=1,
    )
]


@dataclass(frozen=True)
class StoredReply:
    """The first answer to a POST carrying an ``Idempotency-Key``, replayed for a repeat of it."""

    fingerprint: bytes
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class SandboxError(Exception):
    """A request the real shop would refuse: becomes a 400/404 with the documents' error envelope."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _encode(order: dict[str, Any], escape: bool) -> bytes:
    data = orjson.dumps(order)
    if escape:
        # The real server writes some characters as \u escapes ("3896\u0040noemail.loc").
        data = data.replace(b"@", b"\\u0040").replace(b"/", b"\\u002f")
    return data


def _id(value: Any, field: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise SandboxError(400, f"'{field}' must be an id, got {value!r}") from None


def _cost(value: Any, field: str) -> Decimal:
    """An optional non-negative amount of an order-create body (absent means 0)."""
    if value is None or value == "":
        return Decimal(0)
    try:
        amount = Decimal(str(value).strip())
    except Exception:
        raise SandboxError(400, f"'{field}' must be a number, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise SandboxError(400, f"'{field}' must be a non-negative amount, got {value!r}")
    return amount.quantize(CENT)


def _amount(value: Any, field: str) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except Exception:
        raise SandboxError(400, f"'{field}' must be a number, got {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise SandboxError(400, f"'{field}' must be a positive amount, got {value!r}")
    return amount.quantize(CENT)


def autumn_fold(zone: ZoneInfo, year: int = 2024) -> datetime | None:
    """The local start of the first hour of ``year`` that ``zone`` lives twice (clocks going back), or
    None for a zone without daylight saving."""
    when = datetime(year, 1, 1)
    while when.year == year:
        first, second = when.replace(tzinfo=zone), when.replace(tzinfo=zone, fold=1)
        if (first.utcoffset() or timedelta()) > (second.utcoffset() or timedelta()):
            return when
        when += timedelta(hours=1)
    return None


class WebCommanderStore:
    def __init__(
        self,
        orders: int = 200,
        seed: int = 42,
        timezone: str = "Australia/Melbourne",
        realistic: bool = False,
        prerender: bool = False,
        listing_order: str = "newest",
    ):
        if listing_order not in ("newest", "oldest"):
            raise ValueError(f"listing_order must be 'newest' or 'oldest', not {listing_order!r}")
        self.zone = ZoneInfo(timezone)
        self.listing_order = listing_order
        """The document's one list example does not settle the order; the default is the harder
        reading, newest first, where new orders arrive at offset 0 and shift every later offset."""
        self._lock = threading.RLock()
        self._orders: dict[int, dict[str, Any]] = {}
        self._ids: list[int] = []
        self._cache: dict[int, bytes] = {}
        self._next_comment = 1_000_000
        self._next_payment = 1_000_000
        self.gateways = copy.deepcopy(PAYMENT_GATEWAYS)
        self.invoices: list[dict[str, Any]] = []
        """Invoices sent through the v4 admin API, oldest first."""
        self.replies: dict[tuple[str, str], StoredReply] = {}
        """Idempotency-Key replies by (client, key): shop state, so a new app over this store keeps them."""
        self.replies_in_flight: set[tuple[str, str]] = set()
        self.replies_lock = threading.Lock()
        for order in generate_orders(orders, seed, realistic=realistic):
            self._put(order)
        if prerender:
            # Encode every order now, so that serving pages costs the sandbox next to nothing.
            for oid in self._ids:
                self._encoded(oid)

    # -- reads ---------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self._ids)

    def orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(self._orders[i]) for i in self._ids]

    def get(self, order_id: Any) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._order(order_id))

    def list_page(self, offset: int, max_: int) -> tuple[int, list[bytes]]:
        with self._lock:
            count = len(self._ids)
            if self.listing_order == "oldest":
                ids = self._ids[offset:] if max_ < 0 else self._ids[offset : offset + max_]
            else:
                stop = count - offset
                start = 0 if max_ < 0 else max(stop - max_, 0)
                ids = self._ids[start:stop][::-1] if stop > 0 else []
            return count, [self._encoded(i) for i in ids]

    def listed_ids(self) -> list[int]:
        """Every order id in listing order (what a complete scan must see)."""
        with self._lock:
            return list(self._ids) if self.listing_order == "oldest" else self._ids[::-1]

    def single(self, order_id: Any) -> dict[str, Any]:
        """The single-order form: country and state as objects, as ``GET order`` shows them."""
        order = self.get(order_id)
        for kind in ("billing", "shipping"):
            address = order.get(kind)
            if isinstance(address, dict):
                address["country"] = copy.deepcopy(
                    COUNTRIES.get(address.get("country"), address.get("country"))
                )
                address["state"] = copy.deepcopy(STATES.get(address.get("state"), address.get("state")))
                address["version"] = None
        return order

    # -- writes --------------------------------------------------------------------------------------
    def add_raw(self, order: dict[str, Any]) -> None:
        """Put an order in as given, even a malformed one (for quarantine tests)."""
        with self._lock:
            self._put(copy.deepcopy(order))

    def add_generated(self, seed: int, realistic: bool = False) -> int:
        """A new generated order with the next id, placed now (a customer ordering during a scan)."""
        with self._lock:
            oid = (self._ids[-1] + 1) if self._ids else 1
            now = datetime.now(self.zone).replace(tzinfo=None, microsecond=0)
            order = next(
                generate_orders(1, seed, realistic=realistic, start_id=oid, start=now - timedelta(minutes=31))
            )
            self._put(order)
            return oid

    def add_oddities(self, *, oversized: int = 0, dst_fold: int = 0, seed: int = 42) -> list[int]:
        """Orders real shops were seen to hold. ``oversized``: a 200 KB ``customerName`` (a malformed
        record, not an order). ``dst_fold``: created in the first pass of the autumn hour that happens
        twice and updated 30 minutes later, in its second pass, so the local ``updated`` reads earlier
        than ``created``. Returns their ids."""
        added: list[int] = []
        fold = autumn_fold(self.zone)
        with self._lock:
            for n in range(oversized + (dst_fold if fold else 0)):
                oid = (self._ids[-1] + 1) if self._ids else 1
                order = next(generate_orders(1, seed + 10_000 + n, start_id=oid))
                if n < oversized:
                    order["customerName"] = 'Ω"\\' * 66_667  # 200 KB of text, 600 KB escaped
                else:
                    assert fold is not None
                    order["created"] = stamp(fold + timedelta(minutes=40), True)
                    order["updated"] = stamp(fold + timedelta(minutes=10), True)
                self._put(order)
                added.append(oid)
        return added

    def delete(self, order_id: Any) -> None:
        with self._lock:
            oid = _id(order_id, "id")
            self._orders.pop(oid, None)
            self._cache.pop(oid, None)
            index = bisect_left(self._ids, oid)
            if index < len(self._ids) and self._ids[index] == oid:
                self._ids.pop(index)

    def set_status(self, order_id: Any, status: Any) -> None:
        if status not in ORDER_STATUSES:
            raise SandboxError(400, f"'status' must be one of {', '.join(ORDER_STATUSES)}, got {status!r}")
        with self._lock:
            order = self._order(order_id)
            order["orderStatus"] = status
            self._touched(order, resummarize=False)

    def set_payment_status(self, order_id: Any, status: Any) -> None:
        if status not in PAYMENT_STATUSES:
            raise SandboxError(400, f"'status' must be one of {', '.join(PAYMENT_STATUSES)}, got {status!r}")
        with self._lock:
            order = self._order(order_id)
            order["paymentStatus"] = status
            self._touched(order, resummarize=False)

    def add_comment(
        self,
        order_id: Any,
        message: Any,
        *,
        visible: bool = False,
        admin: str | None = None,
        is_admin: bool = True,
        field: str = "message",
    ) -> int:
        """``field`` names the request's text field in the error (``message`` here, ``content`` in v4)."""
        if not isinstance(message, str) or not message.strip():
            raise SandboxError(400, f"'{field}' must be a non-empty string")
        with self._lock:
            order = self._order(order_id)
            self._next_comment += 1
            order["orderComment"].append(
                {
                    "id": self._next_comment,
                    "content": message,
                    "adminName": admin,
                    "isVisibleToCustomer": visible,
                    "isAdmin": is_admin,
                    "created": self._now(),
                }
            )
            self._touched(order, resummarize=False)
            return self._next_comment

    def record_invoice(self, order_id: Any, payment_status: Any, notes: Any) -> dict[str, Any]:
        """A v4 send-invoice: nothing is mailed, the request is kept in ``invoices`` for tests to see."""
        with self._lock:
            order = self._order(order_id)
            invoice = {
                "order_id": order["id"],
                "payment_status": payment_status,
                "notes": notes,
                "sent_at": self._now().replace(": ", ":"),
            }
            self.invoices.append(invoice)
            self._touched(order, resummarize=False)
            return copy.deepcopy(invoice)

    def refund_payment(self, payment_id: Any, amount: Any) -> int:
        pid = _id(payment_id, "id")
        value = _amount(amount, "amount")
        with self._lock:
            for oid in self._ids:
                order = self._orders[oid]
                for payment in order.get("payments") or []:
                    if payment.get("id") == pid and payment.get("refundId") is None:
                        return self._refund(order, payment, value)
        raise SandboxError(404, "Payment not found")

    def _refund(self, order: dict[str, Any], payment: dict[str, Any], value: Decimal) -> int:
        if payment["status"] not in ("success", "paid", "completed", "refunded"):
            raise SandboxError(400, f"payment {payment['id']} is {payment['status']}: nothing to refund")
        refunded = sum(
            (dec(p["amount"]) for p in order["payments"] if p.get("refundId") == payment["id"]), Decimal(0)
        )
        remaining = dec(payment["amount"]) - refunded
        if value > remaining:
            raise SandboxError(
                400, f"refund amount {value} exceeds the refundable {remaining} of payment {payment['id']}"
            )
        self._next_payment += 1
        order["payments"].append(
            {
                "surcharge": 0.0,
                "amount": money(value),
                "trackInfo": None,
                "payerInfo": payment.get("payerInfo"),
                "gatewayCode": payment.get("gatewayCode"),
                "payingDate": self._now(),
                "gatewayName": payment.get("gatewayName"),
                "gatewayResponse": None,
                "id": self._next_payment,
                "refundId": payment["id"],
                "order": order["id"],
                "status": "refunded",
            }
        )
        if value == remaining:
            payment["status"] = "refunded"
        self._touched(order)
        return payment["id"]

    def make_payment(self, order_id: Any, gateway: Any, date: Any, amount: Any) -> int:
        value = _amount(amount, "amount")
        if not isinstance(gateway, str) or gateway not in {g["code"] for g in self.gateways}:
            raise SandboxError(400, f"unknown 'paymentGateway' {gateway!r}")
        if not date:
            raise SandboxError(400, "'date' is required, like 2023-02-01 20:38:17")
        try:
            paid_at = datetime.strptime(str(date), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise SandboxError(400, f"'date' must be like 2023-02-01 20:38:17, got {date!r}") from None
        with self._lock:
            order = self._order(order_id)
            self._next_payment += 1
            order["payments"].append(
                {
                    "surcharge": 0.0,
                    "amount": money(value),
                    "trackInfo": None,
                    "payerInfo": order.get("customerName"),
                    "gatewayCode": gateway,
                    "payingDate": stamp(paid_at, True),
                    "gatewayName": None,
                    "gatewayResponse": None,
                    "id": self._next_payment,
                    "refundId": None,
                    "order": order["id"],
                    "status": "success",
                }
            )
            self._touched(order)
            return self._next_payment

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise SandboxError(400, "'items' must be a non-empty list")
        with self._lock:
            oid = (self._ids[-1] + 1) if self._ids else 1
            now = self._now()
            lines = []
            for n, item in enumerate(items):
                if not isinstance(item, dict) or "productId" not in item:
                    raise SandboxError(400, f"items[{n}].productId is required")
                gross = _amount(item.get("price", 0) or "0.01", f"items[{n}].price")
                quantity = _id(item.get("quantity", 1), f"items[{n}].quantity")
                taxable = str(item.get("isTaxable", True)).lower() != "false"
                # The document's example: price 666 tax-inclusive -> 605.45 + 60.55 tax.
                net = (gross / (1 + TAX_RATE)).quantize(CENT) if taxable else gross
                tax = ((gross - net) * quantity).quantize(CENT)
                lines.append(
                    {
                        "actualDiscount": 0.0,
                        "quantity": quantity,
                        "productId": _id(item["productId"], "productId"),
                        "productVariationId": None,
                        "actualPrice": money(gross),
                        "shippingClassName": None,
                        "taxDiscount": 0.0,
                        "isTaxable": taxable,
                        "discount": 0.0,
                        "tax": money(tax),
                        "storeId": None,
                        "version": None,
                        "shippingClassId": None,
                        "productName": item.get("productName"),
                        "price": money(net),
                        "variations": None,
                        "id": oid * 100 + n,
                        "productType": item.get("productType", "product"),
                        "isShippable": str(item.get("isShippable", True)).lower() != "false",
                    }
                )
            billing = self._address(body.get("billingAddress"), oid * 2)
            shipping = self._address(body.get("shippingAddress") or body.get("billingAddress"), oid * 2 + 1)
            order: dict[str, Any] = {
                "orderComment": [],
                "payments": [],
                "lastReminderTime": now,
                "totalSurcharge": money(_cost(body.get("totalSurcharge"), "totalSurcharge")),
                "orderStatus": "pending",
                "orderChannel": None,
                "billing": billing,
                "shippingStatus": "awaiting",
                "shippingTax": money(_cost(body.get("shippingTax"), "shippingTax")),
                "shipping": shipping,
                "discountOnOrder": 0.0,
                "additionalInfo": None,
                "customerId": body.get("customerId"),
                "handlingCost": money(_cost(body.get("handlingCost"), "handlingCost")),
                "discountOnShippingTax": 0.0,
                "id": oid,
                "paymentStatus": "unpaid",
                "handlingTax": 0.0,
                "orderNo": 1000 + oid,
                "shippingCost": money(_cost(body.get("shippingCost"), "shippingCost")),
                "discountOnOrderTotalTax": 0.0,
                "created": now,
                "ipAddress": body.get("ipAddress"),
                "deliveryType": "shipping",
                "version": None,
                "shipments": [],
                "customerName": " ".join(filter(None, [shipping.get("firstName"), shipping.get("lastName")])),
                "reminderCount": 0,
                "createdBy": None,
                "actualTax": 0.0,
                "discountOnShipping": 0.0,
                "updated": now,
                "items": lines,
                "orderSummary": {},
            }
            summarize(order)
            self._next_payment += 1
            order["payments"].append(
                {
                    "surcharge": 0.0,
                    "amount": float(order["orderSummary"]["grandTotal"]),
                    "trackInfo": None,
                    "payerInfo": None,
                    "gatewayCode": "PIS",
                    "payingDate": now,
                    "gatewayName": None,
                    "gatewayResponse": None,
                    "id": self._next_payment,
                    "refundId": None,
                    "order": oid,
                    "status": "awaiting",
                }
            )
            self._put(order)
            return self.single(oid)

    def update_gateway(self, body: dict[str, Any]) -> None:
        gid = _id(body.get("id"), "id")
        with self._lock:
            for gateway in self.gateways:
                if gateway["id"] == gid:
                    for key in ("isEnabled", "isDefault"):
                        if key in body:
                            gateway[key] = str(body[key]).lower() == "true"
                    for key in ("availableFor", "surchargeType", "pendingMessage", "successMessage"):
                        if key in body:
                            gateway[key] = body[key]
                    for key in ("flatSurcharge", "percentSurcharge"):
                        if key in body:
                            gateway[key] = float(_cost(body[key], key))
                    gateway["updated"] = self._now().replace(": ", ":")
                    return
        raise SandboxError(404, "Payment gateway not found")

    # -- internals -----------------------------------------------------------------------------------
    def _address(self, given: Any, address_id: int) -> dict[str, Any]:
        if not isinstance(given, dict):
            raise SandboxError(400, "'billingAddress' must be an object")
        return {
            "lastName": given.get("lastName"),
            "country": _id(given.get("countryId", 12), "countryId"),
            "city": given.get("city"),
            "companyName": given.get("companyName"),
            "mobile": given.get("mobile"),
            "firstName": given.get("firstName"),
            "phone": given.get("phone"),
            "addressLine1": given.get("addressLine1"),
            "addressLine2": given.get("addressLine2"),
            "postCode": given.get("postCode"),
            "id": address_id,
            "state": _id(given["stateId"], "stateId") if given.get("stateId") is not None else None,
            "fax": given.get("fax"),
            "email": given.get("email"),
        }

    def _now(self) -> str:
        return stamp(datetime.now(self.zone).replace(tzinfo=None, microsecond=0), True)

    def _order(self, order_id: Any) -> dict[str, Any]:
        oid = _id(order_id, "id")
        if oid not in self._orders:
            raise SandboxError(404, "Order not found")
        return self._orders[oid]

    def _touched(self, order: dict[str, Any], *, resummarize: bool = True) -> None:
        if resummarize:
            summarize(order)
        updated = datetime.now(self.zone).replace(tzinfo=None, microsecond=0)
        previous = str(order.get("updated", "")).replace(": ", ":")
        if previous and previous >= updated.isoformat():
            updated = datetime.fromisoformat(previous) + timedelta(seconds=1)
        order["updated"] = stamp(updated, True)
        self._cache.pop(order["id"], None)

    def _put(self, order: dict[str, Any]) -> None:
        oid = order.get("id")
        key = oid if isinstance(oid, int) else _id(oid, "id") if oid is not None else -len(self._orders) - 1
        if key not in self._orders:
            insort(self._ids, key)
        self._orders[key] = order
        self._cache.pop(key, None)

    def _encoded(self, oid: int) -> bytes:
        data = self._cache.get(oid)
        if data is None:
            data = self._cache[oid] = _encode(self._orders[oid], escape=oid % 3 == 0)
        return data
