"""A WooCommerce refund says what it returned by item type: product lines, shipping and fees. The
canonical refund keeps all three, each with its kind, so its lines add up to its amount.

The refund below has the shape WooCommerce 11 answers on ``GET /orders/<id>/refunds`` for a return of
one product line and its shipping (the real shop's refund 183: 18.93 of product, 9.90 of shipping
item 585, 28.83 in all)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ordersync.mapping import MappingContext, load_mapping
from ordersync.models import Platform
from tests.woocommerce.test_recorded_mapping import V3_ORDERS

CTX = MappingContext(
    platform=Platform.WOOCOMMERCE, shop="woo", timezone=ZoneInfo("Europe/Berlin"), currency="EUR"
)


def _refunded(item_id: int, meta_id: int) -> list[dict[str, Any]]:
    return [{"id": meta_id, "key": "_refunded_item_id", "value": str(item_id)}]


REFUND_183: dict[str, Any] = {
    "id": 183,
    "date_created": "2026-11-22T15:20:11",
    "date_created_gmt": "2026-11-22T14:20:11",
    "amount": "28.83",
    "reason": "Returned with shipping",
    "refunded_by": 1,
    "refunded_payment": False,
    "meta_data": [{"id": 2210, "key": "_refund_type", "value": "partial"}],
    "line_items": [
        {
            "id": 586,
            "name": "Mug",
            "product_id": 17,
            "variation_id": 0,
            "quantity": -1,
            "tax_class": "",
            "subtotal": "-15.91",
            "subtotal_tax": "-3.02",
            "total": "-15.91",
            "total_tax": "-3.02",
            "taxes": [{"id": 1, "total": "-3.02", "subtotal": "-3.02"}],
            "meta_data": _refunded(583, 2211),
            "sku": "MUG",
            "price": -15.91,
        }
    ],
    "shipping_lines": [
        {
            "id": 587,
            "method_title": "Flat rate",
            "method_id": "flat_rate",
            "instance_id": "1",
            "total": "-9.90",
            "total_tax": "0.00",
            "taxes": [],
            "tax_status": "taxable",
            "meta_data": _refunded(585, 2212),
        }
    ],
    "tax_lines": [],
    "fee_lines": [],
}


def test_a_refund_of_a_line_and_its_shipping_keeps_both_and_adds_up() -> None:
    raw = {**next(o for o in V3_ORDERS if o["shipping_lines"]), "_refunds": [REFUND_183]}
    order = load_mapping("woocommerce_v3").map(raw, CTX)
    (refund,) = order.refunds
    assert [(x.kind, x.line_item_id, x.amount, x.tax) for x in refund.lines] == [
        ("product", "583", Decimal("15.91"), Decimal("3.02")),
        ("shipping", "585", Decimal("9.90"), Decimal("0.00")),
    ]
    assert sum((x.amount + x.tax for x in refund.lines), Decimal(0)) == refund.amount == Decimal("28.83")
    assert refund.lines[1].product_id is None and refund.lines[1].quantity == 0


def test_a_refunded_fee_is_a_fee_line() -> None:
    fee = {
        "id": 590,
        "name": "Gift wrap",
        "tax_class": "",
        "tax_status": "taxable",
        "amount": "",
        "total": "-2.50",
        "total_tax": "-0.48",
        "taxes": [{"id": 1, "total": "-0.48", "subtotal": ""}],
        "meta_data": _refunded(584, 2213),
    }
    refund = {**REFUND_183, "amount": "2.98", "line_items": [], "shipping_lines": [], "fee_lines": [fee]}
    order = load_mapping("woocommerce_v3").map({**V3_ORDERS[0], "_refunds": [refund]}, CTX)
    (line,) = order.refunds[0].lines
    assert (line.kind, line.line_item_id, line.amount + line.tax) == ("fee", "584", Decimal("2.98"))


def test_a_refund_by_amount_alone_has_no_lines() -> None:
    refund = {**REFUND_183, "amount": "5.00", "line_items": [], "shipping_lines": [], "fee_lines": []}
    order = load_mapping("woocommerce_v3").map({**V3_ORDERS[0], "_refunds": [refund]}, CTX)
    assert order.refunds[0].lines == [] and order.refunds[0].amount == Decimal("5.00")
