"""Seeded orders for the sandbox WooCommerce shop, in the recorded shop's proportions: a mix of
statuses, guests, coupons, fees, variations, several tax rates, refunds (full, partial by amount,
partial by line) and notes (system, private, to the customer)."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordersync.sandbox.woocommerce.catalog import GATEWAYS, PRODUCTS, SHIPPING_METHODS
from ordersync.sandbox.woocommerce.model import CouponLine, FeeLine, Line, Order, ShippingLine, price

if TYPE_CHECKING:
    from ordersync.sandbox.woocommerce.store import WooCommerceStore

GENERATED_UNTIL = datetime(2026, 11, 1, tzinfo=UTC)
"""Generated history ends here, whatever the clock says, so the same seed gives the same shop."""

FIRST = ["Anna", "Lea", "Jonas", "Marie", "Luca", "Clara", "Paul", "Sofia", "Felix", "Emma", "Noah", "Mia"]
LAST = ["Schmidt", "Gruber", "Müller", "Rossi", "Dubois", "Neumann", "Weber", "Bianchi", "Martin", "Huber"]
CITIES = {
    "DE": [("Berlin", "10115"), ("Leipzig", "04109"), ("Hamburg", "20095"), ("München", "80331")],
    "AT": [("Wien", "1010"), ("Graz", "8010")],
    "FR": [("Paris", "75001"), ("Lyon", "69001")],
    "IT": [("Roma", "00184"), ("Milano", "20121")],
}
STATUS_WEIGHTS = {
    "completed": 30,
    "processing": 20,
    "cancelled": 15,
    "failed": 8,
    "on-hold": 7,
    "pending": 6,
    "refunded": 4,
    "shipped": 2,
    "trash": 2,
}


def _address(rng: random.Random, first: str, last: str, country: str, email: str | None) -> dict[str, str]:
    city, postcode = rng.choice(CITIES[country])
    address = {
        "first_name": first,
        "last_name": last,
        "company": rng.choice(["", "", "", "Kaffee & Co. GmbH"]),
        "address_1": f"Teststr. {rng.randint(1, 99)}",
        "address_2": rng.choice(["", "", "Hinterhaus"]),
        "city": city,
        "state": "",
        "postcode": postcode,
        "country": country,
    }
    if email is not None:
        address["email"] = email
    address["phone"] = f"+49 30 {rng.randint(100, 999999)}" if email is not None else rng.choice(["", ""])
    return address


def customers(seed: int) -> dict[int, dict[str, Any]]:
    """Registered customers, ids 2..41, as the legacy API embeds them in orders."""
    rng = random.Random(seed * 7 + 1)
    people: dict[int, dict[str, Any]] = {}
    for cid in range(2, 42):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        country = rng.choices(list(CITIES), weights=[60, 12, 13, 15])[0]
        email = f"{first}.{last}{cid}@example.test".lower().replace("ü", "ue")
        people[cid] = {
            "first_name": first,
            "last_name": last,
            "email": email,
            "country": country,
            "username": f"{first}{last}{cid}".lower().replace("ü", "ue"),
            "created": GENERATED_UNTIL - timedelta(days=400 - cid),
            "billing": _address(rng, first, last, country, email),
        }
    return people


def order_key(rng: random.Random) -> str:
    return "wc_order_" + "".join(rng.choices(string.ascii_letters + string.digits, k=13))


def generate(store: WooCommerceStore, count: int, seed: int) -> None:
    rng = random.Random(seed)
    span = timedelta(days=180).total_seconds()
    start = GENERATED_UNTIL - timedelta(seconds=span)
    step = span / max(count, 1)
    created = start
    for i in range(count):
        # Mostly spread out, sometimes several orders in the same second, as checkouts and imports do.
        if i and rng.random() < 0.15:
            pass
        else:
            created = start + timedelta(seconds=int(i * step + rng.random() * step * 0.5))
        _one(store, rng, created)


def _one(store: WooCommerceStore, rng: random.Random, created: datetime) -> None:
    cid = 0 if rng.random() < 0.2 else rng.randint(2, 41)
    if cid:
        person = store.customers[cid]
        first, last, email, country = (
            person["first_name"],
            person["last_name"],
            person["email"],
            person["country"],
        )
    else:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"guest{rng.randint(1, 9999)}@example.test"
        country = rng.choices(list(CITIES), weights=[60, 12, 13, 15])[0]
    billing = _address(rng, first, last, country, email)
    shipping = {k: v for k, v in billing.items() if k != "email"}
    shipping["phone"] = ""
    gateway = rng.choice(list(GATEWAYS))
    status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
    order = Order(
        id=store.next_post_id(),
        status="pending",
        created=created,
        modified=created,
        customer_id=cid,
        billing=billing,
        shipping=shipping,
        payment_method=gateway,
        payment_method_title=GATEWAYS[gateway],
        order_key=order_key(rng),
        currency=store.currency,
        lines=[],
        customer_ip=f"203.0.113.{rng.randint(1, 254)}" if rng.random() < 0.7 else "",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0" if rng.random() < 0.6 else "",
        customer_note=rng.choice(["", "", "", "", "Bitte beim Nachbarn abgeben."]),
    )
    for product in rng.sample(PRODUCTS, k=rng.choices([1, 2, 3, 4, 5], weights=[16, 36, 24, 21, 3])[0]):
        qty = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
        line = Line(id=store.next_item_id(), product=product, quantity=qty)
        line.meta = [(store.next_meta_id(), key, value) for key, _, value in product.attributes]
        order.lines.append(line)
    if not all(line.product.virtual for line in order.lines):
        method_id, title, total = rng.choice(SHIPPING_METHODS)
        order.shipping_lines.append(ShippingLine(store.next_item_id(), method_id, title, total))
    if rng.random() < 0.12:
        order.fees.append(FeeLine(store.next_item_id(), "Gift wrap", Decimal("2.50")))
    if rng.random() < 0.18:
        code = rng.choices(["tenoff", "five", "mug2"], weights=[45, 45, 10])[0]
        if code == "mug2" and not any(line.product.sku == "SKU-003" for line in order.lines):
            code = "five"
        order.coupons.append(CouponLine(store.next_item_id(), code, store.next_meta_id()))
    price(order)
    order.tax_line_ids = {rate: store.next_item_id() for rate, _, _ in order.tax_rows()}
    order.meta = _meta(store, rng)
    store.insert(order)
    _history(store, rng, order, status)


def _meta(store: WooCommerceStore, rng: random.Random) -> list[tuple[int, str, Any]]:
    """Order meta of mixed types, as plugins leave it: strings, numbers, booleans, objects, lists and
    JSON kept as a string."""
    meta: list[tuple[int, str, Any]] = [(store.next_meta_id(), "is_vat_exempt", "no")]
    if rng.random() < 0.5:
        meta.append(
            (store.next_meta_id(), "_wc_order_attribution_source_type", rng.choice(["typein", "organic"]))
        )
    if rng.random() < 0.3:
        meta.append((store.next_meta_id(), "loyalty_points", rng.randint(0, 500)))
    if rng.random() < 0.15:
        meta.append((store.next_meta_id(), "gift_message", {"to": rng.choice(FIRST), "text": "Alles Gute!"}))
    if rng.random() < 0.15:
        meta.append((store.next_meta_id(), "_customer_tags", ["newsletter", "vip"][: rng.randint(1, 2)]))
    if rng.random() < 0.1:
        meta.append((store.next_meta_id(), "_delivery_window", '{"from":"09:00","to":"12:00"}'))
    if rng.random() < 0.1:
        meta.append((store.next_meta_id(), "_is_b2b", rng.random() < 0.5))
    return meta


def _history(store: WooCommerceStore, rng: random.Random, order: Order, final: str) -> None:
    """Walk the order from pending to its final status through the store, so notes, paid and
    completed dates and refunds come out as WooCommerce makes them."""
    at = order.created

    def tick(seconds: int) -> datetime:
        return at + timedelta(seconds=seconds)

    if final == "pending":
        return
    if final in ("processing", "completed", "refunded", "shipped") and (
        final != "processing" or rng.random() < 0.7
    ):
        at = tick(rng.randint(0, 3))
        store.set_status(order, "processing", at=at)
        store.add_note(order.id, 'Email "New order" sent.', at=at)
        if rng.random() < 0.5:
            for line in order.lines:
                line.meta.append((store.next_meta_id(), "_reduced_stock", str(line.quantity)))
    if final in ("completed", "refunded"):
        at = tick(rng.randint(3600, 5 * 86400))
        store.set_status(order, "completed", at=at)
    elif final == "shipped":
        at = tick(rng.randint(3600, 3 * 86400))
        store.set_status(order, "shipped", at=at)
    elif final in ("on-hold", "cancelled", "failed", "trash"):
        at = tick(rng.randint(1, 7200))
        store.set_status(order, "cancelled" if final == "trash" else final, at=at)
    if rng.random() < 0.25 and final in ("processing", "completed", "shipped", "refunded"):
        at = tick(rng.randint(60, 86400))
        store.add_note(order.id, "Your parcel is on its way.", customer_note=True, at=at)
        store.add_note(order.id, 'Email "Customer note" sent.', at=at)
    if rng.random() < 0.2:
        at = tick(rng.randint(60, 86400))
        store.add_note(order.id, f"Internal note for order {order.id}", at=at)
    if final == "refunded" and order.total > 0:  # a free order has nothing to refund
        at = tick(rng.randint(86400, 10 * 86400))
        store.create_refund(
            order.id, {"amount": str(order.total), "reason": "Full refund", "api_refund": False}, at=at
        )
    elif final in ("completed", "processing", "shipped") and order.paid and rng.random() < 0.12:
        at = tick(rng.randint(86400, 10 * 86400))
        line = order.lines[0]
        if rng.random() < 0.5 or line.total <= 0:
            body: dict[str, Any] = {"amount": "5.00", "reason": "Damaged item", "api_refund": False}
        else:
            unit = (line.total / line.quantity).quantize(Decimal("0.01"))
            taxes = [
                {"id": r, "refund_total": str((t / line.quantity).quantize(Decimal("0.01")))}
                for r, t in line.taxes.items()
            ]
            amount = unit + sum((Decimal(t["refund_total"]) for t in taxes), Decimal(0))
            items: list[dict[str, Any]] = [
                {"id": line.id, "quantity": 1, "refund_total": str(unit), "refund_tax": taxes}
            ]
            # Every other such refund also returns the shipping, or a fee, as merchants do for a
            # return: WooCommerce then lists it under the refund's shipping_lines or fee_lines.
            extra = [x for x in (*order.shipping_lines, *order.fees) if x.total > 0] if order.id % 2 else []
            if extra:
                other = extra[0]
                other_taxes = [{"id": r, "refund_total": str(t)} for r, t in other.taxes.items()]
                items.append({"id": other.id, "refund_total": str(other.total), "refund_tax": other_taxes})
                amount += other.total + sum(other.taxes.values(), Decimal(0))
            body = {
                "amount": str(amount),
                "reason": "Returned one line",
                "api_refund": False,
                "line_items": items,
            }
        if 0 < Decimal(body["amount"]) <= order.total:
            store.create_refund(order.id, body, at=at)
    if final == "trash":
        store.trash(order.id, at=tick(rng.randint(86400, 2 * 86400)))
