"""One order with everything, written into the sandbox shop through its API and read back through the
connector: two tax rates, a coupon, a fee, shipping, a partial refund by line with its tax, and notes.
The canonical order must reconcile and carry every part."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson

from ordersync.config import HttpSettings, WooCommerceShop
from ordersync.http import HttpPolicy
from ordersync.mapping import MappingContext, load_mapping
from ordersync.models import PaymentStatus, Platform
from ordersync.platforms.woocommerce.client import open_client
from ordersync.platforms.woocommerce.extract import fetch_details, iter_order_pages
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET, create_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore

ZERO = Decimal(0)


def _everything(version: str) -> tuple[dict[str, Any], Any]:
    store = WooCommerceStore(orders=0, seed=1)
    app = create_app(store)
    shop = WooCommerceShop(
        name="woo",
        platform="woocommerce",
        base_url="https://shop.test",
        api_version=version,  # type: ignore[arg-type]
        consumer_key=DEFAULT_CONSUMER_KEY,
        consumer_secret=DEFAULT_CONSUMER_SECRET,
        timezone="Europe/Berlin",
        currency="EUR",
    )

    async def run() -> dict[str, Any]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="https://shop.test/wp-json/wc/v3",
            auth=(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET),
        ) as api:
            created = await api.post(
                "/orders",
                json={
                    "payment_method": "bacs",
                    "set_paid": True,
                    "billing": {
                        "first_name": "Clara",
                        "last_name": "Neumann",
                        "country": "DE",
                        "email": "clara@example.test",
                        "city": "Leipzig",
                        "postcode": "04109",
                    },
                    "line_items": [
                        {"product_id": 12, "quantity": 2},
                        {"product_id": 15, "quantity": 1},
                        {"product_id": 20, "variation_id": 22, "quantity": 1},
                    ],
                    "shipping_lines": [
                        {"method_id": "flat_rate", "method_title": "Flat rate", "total": "4.90"}
                    ],
                    "fee_lines": [{"name": "Gift wrap", "total": "2.50"}],
                    "coupon_lines": [{"code": "tenoff"}],
                },
            )
            assert created.status_code == 201, created.text
            order = created.json()
            line = order["line_items"][0]
            unit_tax = Decimal(line["taxes"][0]["total"]) / 2
            refund = await api.post(
                f"/orders/{order['id']}/refunds",
                json={
                    "amount": str(Decimal(line["total"]) / 2 + unit_tax),
                    "reason": "One bag returned",
                    "api_refund": False,
                    "line_items": [
                        {
                            "id": line["id"],
                            "quantity": 1,
                            "refund_total": str(Decimal(line["total"]) / 2),
                            "refund_tax": [{"id": 1, "refund_total": str(unit_tax)}],
                        }
                    ],
                },
            )
            assert refund.status_code == 201, refund.text
            for text, visible in (("Packed", False), ("On its way", True)):
                note = await api.post(
                    f"/orders/{order['id']}/notes", json={"note": text, "customer_note": visible}
                )
                assert note.status_code == 201
        client = open_client(
            shop, HttpPolicy(HttpSettings(), shop="woo"), transport=httpx.ASGITransport(app=app)
        )
        async with client:
            pages = [p async for p in iter_order_pages(client, per_page=10, concurrency=1)]
            assert len(pages) == 1 and pages[0].count == 1
            details = await fetch_details(
                client, pages[0], refunds=True, notes=True, limiter=asyncio.Semaphore(2)
            )
        raw = pages[0].orders[0]
        assert details.attachments is not None
        raw.update(orjson.loads(details.attachments)[str(raw["id"])])
        return raw

    return asyncio.run(run()), store


def _map(raw: dict[str, Any], version: str):  # type: ignore[no-untyped-def]
    ctx = MappingContext(
        platform=Platform.WOOCOMMERCE, shop="woo", timezone=ZoneInfo("Europe/Berlin"), currency="EUR"
    )
    return load_mapping(f"woocommerce_{version}").map(raw, ctx)


def test_v3_order_with_everything_reconciles() -> None:
    raw, store = _everything("v3")
    order = _map(raw, "v3")
    lines = sum((li.total for li in order.line_items), ZERO)
    assert lines + order.shipping_total + order.fee_total + order.tax_total == order.total
    assert order.subtotal - order.discount_total == lines and order.discount_total > 0
    assert {t.rate_id for t in order.tax_lines} == {"1", "2"}
    assert sum((t.tax_total + t.shipping_tax_total for t in order.tax_lines), ZERO) == order.tax_total
    for line in order.line_items:
        assert sum((t.total for t in line.taxes), ZERO) == line.tax
    assert [c.code for c in order.coupon_lines] == ["tenoff"] and order.coupon_lines[
        0
    ].discount == order.discount_total
    assert [(f.name, f.total) for f in order.fee_lines] == [("Gift wrap", Decimal("2.50"))]
    (refund,) = order.refunds
    (rline,) = refund.lines
    assert rline.line_item_id == order.line_items[0].external_id and rline.quantity == 1
    assert refund.amount == rline.amount + rline.tax == order.refunded_total
    assert order.payment_status is PaymentStatus.PARTIALLY_REFUNDED
    assert sorted(
        (c.text, c.customer_visible) for c in order.comments if c.text in ("Packed", "On its way")
    ) == [
        ("On its way", True),
        ("Packed", False),
    ]
    shirt = next(li for li in order.line_items if li.sku == "TSHIRT-M")
    assert (shirt.product_id, shirt.variation_id, shirt.attributes[0].value) == ("20", "22", "M")
    assert order.total == Decimal(store.v3_order(int(order.external_id))["total"])


def test_v2_reads_the_same_order_to_the_same_money() -> None:
    raw3, _ = _everything("v3")
    raw2, _ = _everything("v2")
    v3, v2 = _map(raw3, "v3"), _map(raw2, "v2")
    for field in (
        "total",
        "tax_total",
        "subtotal",
        "discount_total",
        "shipping_total",
        "fee_total",
        "refunded_total",
    ):
        assert getattr(v3, field) == getattr(v2, field), field
    assert [r.amount for r in v3.refunds] == [r.amount for r in v2.refunds]
    assert {c.text for c in v3.comments} == {c.text for c in v2.comments}
