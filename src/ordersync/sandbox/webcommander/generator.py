"""Deterministic WebCommander orders in the documents' exact shape, with money that adds up.

The shapes follow webcommander-external-app-orders.txt key for key, quirks included: times written
``"2023-05-10T10: 02: 15"`` (and sometimes without the spaces), ids sometimes as strings, guests with a
null ``customerId``, ``variations`` as a list, ``[]`` or ``null``. Refunds are payment entries whose
``refundId`` names the refunded payment (the document shows the field but never a refund).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
TAX_RATE = Decimal("0.10")  # GST, as in the documents' examples (9.08 + 0.91 = 9.99)

COUNTRIES: dict[int, dict[str, Any]] = {
    12: {
        "isDefault": True,
        "code": "AU",
        "name": "Australia",
        "id": 12,
        "state": [66, 67, 68, 69, 70, 71, 72, 73],
        "isActive": True,
    },
    11: {"isDefault": False, "code": "AM", "name": "Armenia", "id": 11, "state": [], "isActive": True},
    153: {"isDefault": False, "code": "NZ", "name": "New Zealand", "id": 153, "state": [], "isActive": True},
    236: {
        "isDefault": False,
        "code": "US",
        "name": "United States",
        "id": 236,
        "state": [7],
        "isActive": True,
    },
}
STATES: dict[int, dict[str, Any]] = {
    sid: {"country": 12, "isDefault": False, "code": code, "name": name, "id": sid, "isActive": True}
    for sid, code, name in [
        (66, "ACT", "Australian Capital Territory"),
        (67, "NSW", "New South Wales"),
        (68, "NT", "Northern Territory"),
        (69, "QLD", "Queensland"),
        (70, "SA", "South Australia"),
        (71, "TAS", "Tasmania"),
        (72, "VIC", "Victoria"),
        (73, "WA", "Western Australia"),
    ]
}
STATES[7] = {
    "country": 236,
    "isDefault": False,
    "code": "CT",
    "name": "Connecticut",
    "id": 7,
    "isActive": True,
}

_CITIES = [
    ("Wheelers Hill", "3150", 72),
    ("South Yarra", "3141", 72),
    ("Docklands", "3008", 72),
    ("Parramatta", "2150", 67),
    ("Fortitude Valley", "4006", 69),
    ("Fremantle", "6160", 73),
    ("Hobart", "7000", 71),
    ("Glenelg", "5045", 70),
]
_FIRST = ["Jarry", "Mia", "Noah", "Olivia", "Liam", "Ava", "Lucas", "Zoe", "Ethan", "Isla", "Irtiza", "Grace"]
_LAST = ["Tom", "Nguyen", "Smith", "Chen", "Williams", "Brown", "Patel", "Kelly", "Singh", "Martin"]
_PRODUCTS = [
    (180, "Nike Brasilia Football/Rugby Boot Bag", "9.08", None),
    (1, "Mulgrave 1/4 zip", "65.00", None),
    (
        13,
        "Mulgrave Training Tee",
        "32.00",
        ("Colour", ["red", "navy", "white"], "Size", ["XS", "S", "M", "L"]),
    ),
    (495, "API Product", "605.45", None),
    (21, "Club Socks 3-pack", "12.50", ("Size", ["S", "M", "L"])),
    (22, "Training Cone Set", "24.95", None),
    (23, "Match Ball Size 5", "49.00", None),
    (24, "Goalkeeper Gloves", "54.55", ("Size", ["7", "8", "9", "10"])),
    (25, "Drink Bottle 750ml", "8.18", ("Colour", ["blue", "black"])),
    (26, "Shin Guards", "19.95", ("Size", ["S", "M", "L"])),
    (27, "Coaching Clipboard", "15.00", None),
    (28, "Kit Bag Large", "45.45", None),
]
_GATEWAYS = [("PIS", "Pay In Store"), ("CRD", "Credit Card"), ("PAYPAL", "PayPal"), ("BNK", "Bank Transfer")]
_STATUSES = ["pending"] * 2 + ["processing"] * 2 + ["completed"] * 5 + ["cancelled", "on-hold"]
_COMMENTS = [
    "quick deliver",
    "Please leave at the front door",
    "Customer called about sizing",
    "Gift wrap requested",
    "Backorder: ships next week",
]
_ADMINS = ["Shop Admin", "Support Team", None]


def money(value: Decimal) -> float:
    """JSON numbers as the API writes them (9.08, 0.0): floats of exactly two decimals."""
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def stamp(when: datetime, spaced: bool) -> str:
    """WebCommander's own timestamp quirk: ``"2023-05-10T10: 02: 15"``."""
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return text.replace(":", ": ") if spaced else text


def summarize(order: dict[str, Any]) -> None:
    """Recompute orderSummary, actualTax and paymentStatus from the lines and payments, in place."""
    items = order.get("items") or []
    subtotal = sum((dec(i["price"]) * dec(i["quantity"]) for i in items), Decimal(0))
    item_discount = sum((dec(i["discount"]) for i in items), Decimal(0))
    item_tax = sum((dec(i["tax"]) for i in items), Decimal(0))
    discount = item_discount + dec(order["discountOnOrder"]) + dec(order["discountOnShipping"])
    tax = item_tax + dec(order["shippingTax"]) + dec(order["handlingTax"])
    grand = (
        subtotal
        + dec(order["shippingCost"])
        + dec(order["handlingCost"])
        + dec(order["totalSurcharge"])
        - discount
        + tax
    )
    received = sum(
        (
            dec(p["amount"])
            for p in order["payments"]
            if p.get("refundId") is None and p["status"] in ("success", "paid", "completed", "refunded")
        ),
        Decimal(0),
    )
    refunded = sum((dec(p["amount"]) for p in order["payments"] if p.get("refundId") is not None), Decimal(0))
    paid = received - refunded
    order["actualTax"] = money(tax)
    order["orderSummary"] = {
        "subTotal": f"{subtotal:.2f}",
        "shippingCost": f"{dec(order['shippingCost']):.2f}",
        "shippingTax": f"{dec(order['shippingTax']):.2f}",
        "handlingCost": f"{dec(order['handlingCost']):.2f}",
        "totalSurcharge": f"{dec(order['totalSurcharge']):.2f}",
        "totalDiscount": f"{discount:.2f}",
        "totalTax": f"{tax:.2f}",
        "grandTotal": f"{grand:.2f}",
        "paid": f"{paid:.2f}",
        "due": f"{grand - paid:.2f}",
    }
    if order.get("paymentStatus") in ("cancelled",):
        return
    if refunded and refunded >= received:
        order["paymentStatus"] = "refunded"
    elif refunded:
        order["paymentStatus"] = "partially_refunded"
    elif received >= grand and grand > 0:
        order["paymentStatus"] = "paid"
    elif received > 0:
        order["paymentStatus"] = "partially_paid"
    else:
        order["paymentStatus"] = "unpaid"


def address(rng: random.Random, address_id: int, first: str, last: str, email: str) -> dict[str, Any]:
    city, postcode, state = rng.choice(_CITIES)
    return {
        "lastName": last,
        "country": 12,
        "city": city,
        "companyName": rng.choice([None, None, "Acme Pty Ltd"]),
        "mobile": "04" + str(rng.randrange(10_000_000, 99_999_999)),
        "firstName": first,
        "phone": rng.choice([None, "03 9555 " + str(rng.randrange(1000, 9999))]),
        "addressLine1": f"{rng.randrange(1, 300)} {rng.choice(['High', 'Station', 'Church', 'Main'])} St",
        "addressLine2": rng.choice([None, None, f"Unit {rng.randrange(1, 40)}"]),
        "postCode": postcode,
        "id": address_id,
        "state": state,
        "fax": None,
        "email": email,
    }


def _item(rng: random.Random, item_id: int, realistic: bool) -> dict[str, Any]:
    product_id, name, price_text, options = rng.choice(_PRODUCTS)
    price = Decimal(price_text)
    quantity = rng.choice([1, 1, 1, 2, 3])
    taxable = rng.random() > 0.1
    gross = price * quantity
    discount = (
        (gross * Decimal(rng.choice([5, 10])) / 100).quantize(CENT) if rng.random() < 0.15 else Decimal(0)
    )
    tax = ((gross - discount) * TAX_RATE).quantize(CENT, rounding=ROUND_HALF_UP) if taxable else Decimal(0)
    variations: list[str] | None = []
    variation_id = None
    if options:
        variations = [f"{options[0]}: {rng.choice(options[1])}"]
        if len(options) > 2:
            variations.append(f"{options[2]}: {rng.choice(options[3])}")
        variation_id = product_id * 100 + rng.randrange(1, 9)
    elif rng.random() < 0.2:
        variations = None
    slug = name.lower().replace(" ", "-").replace("/", "-")
    images = [
        {
            "idx": 1,
            "name": f"{slug}.jpg",
            "altText": name,
            "url": f"http://localhost:1301/resources/00000000/product/product-{product_id}/{slug}.jpg",
        }
    ]
    unit_tax = (price * TAX_RATE).quantize(CENT, rounding=ROUND_HALF_UP) if taxable else Decimal(0)
    return {
        "actualDiscount": money(discount),
        "quantity": quantity,
        "productId": product_id,
        "productVariationId": variation_id,
        "actualPrice": money(price + unit_tax),
        "shippingClassName": None,
        "taxDiscount": money((discount * TAX_RATE).quantize(CENT)) if taxable else 0.0,
        "isTaxable": taxable,
        "discount": money(discount),
        "tax": money(tax),
        "storeId": None,
        "version": None,
        "shippingClassId": None,
        "productName": name,
        "price": money(price),
        "variations": variations,
        "id": item_id,
        "productType": "product",
        "isShippable": True,
        "productInfo": {"images": images},
    }


def generate_order(rng: random.Random, order_id: int, when: datetime, realistic: bool) -> dict[str, Any]:
    """One order; ``when`` is the shop's local wall-clock time of creation."""
    spaced = rng.random() < 0.8
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    guest = rng.random() < 0.15
    email = f"{order_id}@noemail.loc"
    items = [
        _item(rng, order_id * 100 + n, realistic)
        for n in range(rng.randrange(8, 13) if realistic else rng.randrange(1, 5))
    ]
    status = rng.choice(_STATUSES)
    shipping_cost = Decimal(rng.choice(["0.00", "9.95", "15.00", "0.00"]))
    handling = Decimal("2.50") if rng.random() < 0.1 else Decimal(0)
    surcharge = Decimal("1.20") if rng.random() < 0.05 else Decimal(0)
    subtotal = sum((dec(i["price"]) * i["quantity"] for i in items), Decimal(0))
    order_discount = Decimal("5.00") if rng.random() < 0.1 and subtotal > 20 else Decimal(0)
    updated = when + timedelta(minutes=rng.randrange(1, 60 * 24 * 5))
    customer_id: Any = None if guest else rng.randrange(1, 5000)
    if customer_id is not None and rng.random() < 0.1:
        customer_id = str(customer_id)
    order: dict[str, Any] = {
        "orderComment": [],
        "payments": [],
        "lastReminderTime": stamp(when, spaced),
        "totalSurcharge": money(surcharge),
        "orderStatus": status,
        "orderChannel": rng.choice([None, None, "web", "pos"]),
        "billing": address(rng, order_id * 2, first, last, email),
        "shippingStatus": "awaiting",
        "shippingTax": money((shipping_cost * TAX_RATE).quantize(CENT)),
        "shipping": address(rng, order_id * 2 + 1, first, last, email),
        "discountOnOrder": money(order_discount),
        "additionalInfo": None,
        "customerId": customer_id,
        "handlingCost": money(handling),
        "discountOnShippingTax": 0.0,
        "id": order_id,
        "paymentStatus": "unpaid",
        "handlingTax": money((handling * TAX_RATE).quantize(CENT)),
        "orderNo": 1000 + order_id,
        "shippingCost": money(shipping_cost),
        "discountOnOrderTotalTax": 0.0,
        "created": stamp(when, spaced),
        "ipAddress": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "deliveryType": "shipping" if shipping_cost else rng.choice(["shipping", "pickup"]),
        "version": None,
        "shipments": [],
        "customerName": "Guest Customer" if guest else f"{first} {last}",
        "reminderCount": 0,
        "createdBy": None,
        "actualTax": 0.0,
        "discountOnShipping": 0.0,
        "updated": stamp(updated, spaced),
        "items": items,
        "orderSummary": {},
    }
    summarize(order)
    grand = Decimal(order["orderSummary"]["grandTotal"])
    gateway = rng.choice(_GATEWAYS)
    payer = "Guest Customer" if guest else f"Customer# {customer_id}"
    payment_id = order_id * 10

    def payment(pid: int, amount: Decimal, state: str, refund_of: int | None = None) -> dict[str, Any]:
        return {
            "surcharge": 0.0,
            "amount": money(amount),
            "trackInfo": rng.choice([None, "", f"TX{pid:08d}"]),
            "payerInfo": payer,
            "gatewayCode": gateway[0],
            "payingDate": stamp(when + timedelta(minutes=5), spaced),
            "gatewayName": rng.choice([None, gateway[1]]),
            "gatewayResponse": None,
            "id": pid,
            "refundId": refund_of,
            "order": order_id if rng.random() < 0.9 else str(order_id),
            "status": state,
        }

    if status in ("completed", "processing", "on-hold"):
        order["payments"].append(payment(payment_id, grand, "success"))
        if rng.random() < 0.1 and grand > 10:
            refund = (grand * Decimal(rng.choice([10, 25, 50, 100])) / 100).quantize(CENT)
            order["payments"].append(payment(payment_id + 1, refund, "refunded", refund_of=payment_id))
            if refund == grand:
                order["payments"][0]["status"] = "refunded"
    elif status == "pending":
        order["payments"].append(payment(payment_id, grand, rng.choice(["awaiting", "pending"])))
    else:
        order["payments"].append(payment(payment_id, grand, "pending"))
        order["paymentStatus"] = "cancelled"
    if status == "completed":
        order["shippingStatus"] = "completed"
        order["shipments"].append(
            {
                "shippingDate": stamp(updated, spaced),
                "method": rng.choice(["Australia Post", "StarTrack", "Courier"]),
                "trackingInfo": f"TRX{order_id:06d}",
                "id": order_id,
                "shipmentItem": [i["id"] for i in items],
                "order": order_id,
            }
        )
    elif status == "processing" and len(items) > 1:
        order["shippingStatus"] = "partial"
        order["shipments"].append(
            {
                "shippingDate": stamp(updated, spaced),
                "method": "Australia Post",
                "trackingInfo": None,
                "id": order_id,
                "shipmentItem": [items[0]["id"]],
                "order": order_id,
            }
        )
    for n in range(rng.choice([0, 0, 0, 1, 2])):
        order["orderComment"].append(
            {
                "id": order_id * 10 + n,
                "content": rng.choice(_COMMENTS),
                "adminName": rng.choice(_ADMINS),
                "isVisibleToCustomer": rng.random() < 0.4,
                "isAdmin": True,
                "created": stamp(when + timedelta(hours=n + 1), spaced),
            }
        )
    summarize(order)
    return order


def generate_orders(
    n: int,
    seed: int = 42,
    *,
    realistic: bool = False,
    start_id: int = 1,
    start: datetime = datetime(2024, 1, 1, 9, 0, 0),
) -> Iterator[dict[str, Any]]:
    """``n`` orders, the same for the same seed, created a few minutes apart from ``start``."""
    rng = random.Random(seed)
    when = start
    for offset in range(n):
        when += timedelta(minutes=rng.randrange(1, 30), seconds=rng.randrange(60))
        yield generate_order(rng, start_id + offset, when, realistic)
