"""The verbatim JSON examples of the WebCommander documents map without loss."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ordersync.mapping import MappingContext, load_mapping
from ordersync.models import FulfilmentStatus, Order, OrderStatus, PaymentStatus, Platform

DATA = Path(__file__).parents[1] / "data" / "webcommander"
CTX = MappingContext(
    platform=Platform.WEBCOMMANDER, shop="wc", timezone=ZoneInfo("Australia/Melbourne"), currency="AUD"
)


def example(name: str) -> dict:
    return json.loads((DATA / name).read_bytes())


def mapped(raw: dict) -> Order:
    return load_mapping("webcommander").map(raw, CTX)


def reconciles(order: Order) -> bool:
    return (
        order.subtotal - order.discount_total + order.shipping_total + order.fee_total + order.tax_total
        == order.total
    )


def test_list_example() -> None:
    body = example("external_orders_list.json")
    assert body["status"] == "success" and body["total"] == 424
    order = mapped(body["orders"][0])
    assert order.platform is Platform.WEBCOMMANDER and order.shop == "wc"
    assert (order.external_id, order.number) == ("1645", "635")
    assert order.status is OrderStatus.PENDING and order.status_raw == "pending"
    assert order.payment_status is PaymentStatus.UNPAID
    assert (
        order.fulfilment_status is FulfilmentStatus.FULFILLED and order.fulfilment_status_raw == "completed"
    )
    assert order.currency == "AUD"
    # "2023-05-10T10: 02: 15" is Melbourne wall-clock time (UTC+10 in May).
    assert order.created_at == datetime(2023, 5, 10, 0, 2, 15, tzinfo=UTC)
    assert order.updated_at == datetime(2023, 5, 14, 0, 18, 48, tzinfo=UTC)
    assert order.paid_at is None  # both payments are refunded, none is a completed payment
    assert order.customer_id == "301" and order.customer_name == "Jarry Tommmmmy"
    assert order.customer_email == "3896@noemail.loc"  # from "3896\u0040noemail.loc"
    assert order.ip_address == "0: 0: 0: 0: 0: 0: 0: 1"
    assert order.delivery_type == "shipping" and order.channel is None
    billing = order.billing
    assert billing is not None and billing.external_id == "4346"
    assert (billing.first_name, billing.last_name, billing.city, billing.postcode) == (
        "Jarry",
        "Tom",
        "Wheelers Hill",
        "3150",
    )
    assert (billing.country_id, billing.country_code, billing.state_id, billing.state_code) == (
        "12",
        None,
        "72",
        None,
    )
    assert billing.line2 is None and billing.company is None and billing.fax == "fax"
    assert order.shipping is not None and order.shipping.external_id == "4347"

    (item,) = order.line_items
    assert item.external_id == "2940" and item.product_id == "180" and item.variation_id is None
    assert item.name == "Nike Brasilia Football/Rugby Boot Bag"  # "\u002f"
    assert (item.quantity, item.unit_price, item.subtotal, item.total, item.tax, item.discount) == (
        Decimal(1),
        Decimal("9.08"),
        Decimal("9.08"),
        Decimal("9.08"),
        Decimal("0.91"),
        Decimal("0.00"),
    )
    assert item.taxable is True and item.shippable is True and item.attributes == []

    assert [(p.external_id, p.amount, p.status, p.status_raw, p.gateway) for p in order.payments] == [
        ("1808", Decimal("25.00"), PaymentStatus.REFUNDED, "refunded", "PIS"),
        ("1809", Decimal("10.00"), PaymentStatus.REFUNDED, "refunded", "PIS"),
    ]
    assert order.payments[0].payer_info == "Customer# 93" and order.payments[0].transaction_id is None
    assert order.payments[1].paid_at == datetime(2023, 5, 13, 23, 58, 15, tzinfo=UTC)
    assert order.refunds == [] and order.refunded_total == Decimal("0.00")

    (shipment,) = order.shipments
    assert (shipment.external_id, shipment.method, shipment.tracking, shipment.item_ids) == (
        "47",
        "Australia Post",
        "TRX45454",
        ["140"],
    )
    assert shipment.shipped_at == datetime(2023, 5, 13, 18, 33, 32, tzinfo=UTC)

    assert (order.subtotal, order.tax_total, order.total, order.paid_total, order.discount_total) == (
        Decimal("9.08"),
        Decimal("0.91"),
        Decimal("9.99"),
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert order.shipping_lines == [] and order.fee_lines == []
    (tax,) = order.tax_lines
    assert (tax.code, tax.tax_total, tax.shipping_tax_total) == ("TAX", Decimal("0.91"), Decimal("0.00"))
    assert order.comments == [] and order.coupon_lines == []
    assert reconciles(order)


def test_single_order_example_with_country_and_state_objects() -> None:
    order = mapped(example("external_order_single.json")["order"])
    assert (order.external_id, order.number, order.status) == ("100", "34", OrderStatus.CANCELLED)
    assert order.fulfilment_status is FulfilmentStatus.UNFULFILLED  # "awaiting"
    assert order.customer_id is None and order.customer_name == "Guest Customer"
    # September: Melbourne is still on standard time (UTC+10).
    assert order.created_at == datetime(2021, 9, 2, 20, 0, 43, tzinfo=UTC)
    # December: daylight saving time (UTC+11).
    assert order.updated_at == datetime(2021, 12, 22, 16, 44, 17, tzinfo=UTC)
    billing = order.billing
    assert billing is not None
    assert (billing.country_id, billing.country_code, billing.country_name) == ("12", "AU", "Australia")
    assert (billing.state_id, billing.state_code, billing.state_name) == ("72", "VIC", "Victoria")
    assert billing.email == "220@noemail.loc"
    first, second = order.line_items
    assert (first.quantity, first.unit_price, first.subtotal, first.tax) == (
        Decimal(3),
        Decimal("65.00"),
        Decimal("195.00"),
        Decimal("19.50"),
    )
    assert first.name == "Mulgrave 1/4 zip"
    assert [(a.name, a.value) for a in second.attributes] == [("Colour", "red"), ("Size", "XS")]
    assert (order.subtotal, order.tax_total, order.total) == (
        Decimal("227.00"),
        Decimal("22.70"),
        Decimal("249.70"),
    )
    assert sum(i.subtotal for i in order.line_items) == order.subtotal
    (payment,) = order.payments
    assert (payment.amount, payment.status, payment.status_raw) == (
        Decimal("249.70"),
        PaymentStatus.PENDING,
        "pending",
    )
    assert payment.payer_info == "Guest Customer"
    assert reconciles(order)


def test_order_create_response_example() -> None:
    body = example("external_order_create_response.json")
    assert body["status"] == "success" and body["paymentData"] == {}
    order = mapped(body["order"])
    assert (order.external_id, order.number, order.customer_id) == ("48", "16", "6")
    # This example writes times without the spaces: "2023-02-01T09:38:17" (Melbourne, UTC+11 in February).
    assert order.created_at == datetime(2023, 1, 31, 22, 38, 17, tzinfo=UTC)
    (item,) = order.line_items
    assert item.attributes == []  # "variations": null
    assert (item.unit_price, item.tax) == (Decimal("605.45"), Decimal("60.55"))
    assert order.billing is not None and order.billing.country_code == "AM"
    assert (
        order.billing.state_code == "CT"
        and order.shipping is not None
        and order.shipping.first_name == "Irtiza"
    )
    (payment,) = order.payments
    assert payment.status is PaymentStatus.PENDING and payment.status_raw == "awaiting"
    assert order.total == Decimal("666.00") and reconciles(order)


def test_mapping_is_pure_and_repeatable() -> None:
    raw = example("external_orders_list.json")["orders"][0]
    before = json.dumps(raw, sort_keys=True)
    assert mapped(raw) == mapped(raw)
    assert json.dumps(raw, sort_keys=True) == before


@pytest.mark.parametrize(
    "name", ["external_orders_list.json", "external_order_single.json", "external_order_create_response.json"]
)
def test_examples_survive_a_json_round_trip_through_the_mirror_payload(name: str) -> None:
    body = example(name)
    raw = body["orders"][0] if "orders" in body else body["order"]
    import orjson

    assert mapped(orjson.loads(orjson.dumps(raw))) == mapped(raw)


def test_an_update_in_the_second_pass_of_the_autumn_hour_stays_after_its_creation() -> None:
    """Melbourne's clocks go back at 03:00 on 2024-04-07: 02:00-03:00 happens twice. Created at 02:40
    in the first pass (AEDT) and updated 30 minutes later at 02:10 in the second (AEST)."""
    raw = example("external_orders_list.json")["orders"][0]
    raw["created"], raw["updated"] = "2024-04-07T02: 40: 00", "2024-04-07T02: 10: 00"
    order = mapped(raw)
    assert order.created_at == datetime(2024, 4, 6, 15, 40, tzinfo=UTC)  # the first 02:40 (+11:00)
    assert order.updated_at == datetime(2024, 4, 6, 16, 10, tzinfo=UTC)  # the second 02:10 (+10:00)
    raw["updated"] = "2024-04-07T02: 50: 00"  # after creation in the first reading: left as it is
    assert mapped(raw).updated_at == datetime(2024, 4, 6, 15, 50, tzinfo=UTC)


def test_a_200_kb_customer_name_is_a_malformed_record_with_its_path() -> None:
    from ordersync.mapping import MappingError

    raw = example("external_orders_list.json")["orders"][0]
    raw["customerName"] = "x" * 200_000
    with pytest.raises(MappingError) as caught:
        mapped(raw)
    assert caught.value.path == "(canonical) customer_name" and "1024" in caught.value.reason
