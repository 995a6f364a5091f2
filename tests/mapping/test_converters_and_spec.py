"""Converters at their edges, and mapping files that are wrong fail at load naming the key."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ordersync.mapping import MappingContext, MappingError, MappingSpecError, load_mapping
from ordersync.mapping import converters as c
from ordersync.mapping.engine import OrderMapper, load_mapping_file
from ordersync.models import Order, OrderStatus, Platform

MEL = MappingContext(Platform.WEBCOMMANDER, "s", ZoneInfo("Australia/Melbourne"), "AUD")
JPY = MappingContext(Platform.WEBCOMMANDER, "s", ZoneInfo("Asia/Tokyo"), "JPY")
KWD = MappingContext(Platform.WEBCOMMANDER, "s", ZoneInfo("UTC"), "KWD")


def test_timestamps_in_every_shape_the_documents_show() -> None:
    expected = datetime(2023, 5, 10, 0, 2, 15, tzinfo=UTC)
    for text in ("2023-05-10T10: 02: 15", "2023-05-10T10:02:15", "2023-05-10 10:02:15"):
        assert c.local_datetime(text, MEL) == expected
    assert c.local_datetime("2023-05-10T10:02:15+02:00", MEL) == datetime(2023, 5, 10, 8, 2, 15, tzinfo=UTC)
    assert c.local_datetime(None, MEL) is None and c.local_datetime("", MEL) is None
    with pytest.raises(ValueError, match="not a timestamp"):
        c.local_datetime("10/05/2023", MEL)


def test_dst_changes_in_the_shop_zone() -> None:
    # Melbourne moved to UTC+11 at 2023-10-01 02:00 local; the hour before was UTC+10.
    assert c.local_datetime("2023-10-01T01:30:00", MEL) == datetime(2023, 9, 30, 15, 30, tzinfo=UTC)
    assert c.local_datetime("2023-10-01T03:30:00", MEL) == datetime(2023, 9, 30, 16, 30, tzinfo=UTC)
    assert c.utc_datetime("2023-10-01T03:30:00", MEL) == datetime(2023, 10, 1, 3, 30, tzinfo=UTC)
    assert c.utc_datetime_epoch_none("1970-01-01T00:00:00Z", MEL) is None


def test_money_follows_the_currency_and_never_goes_through_binary_floats() -> None:
    assert c.to_money(9.08, MEL) == Decimal("9.08")
    assert c.to_money(0.1 + 0.2, MEL) == Decimal("0.30")
    assert c.to_money("2.675", MEL) == Decimal("2.68")  # half up, on the decimal text
    assert c.to_money("1500.4", JPY) == Decimal("1500")
    assert c.to_money("1.2345", KWD) == Decimal("1.235")
    assert c.to_money("", MEL) is None and c.to_money_or_zero("", MEL) == Decimal("0.00")
    assert c.abs_money("-5", MEL) == Decimal("5.00")
    assert c.mul_sub_money([9.08, 3, "1.00"], MEL) == Decimal("26.24")
    for bad in ("abc", True, float("nan"), {"a": 1}):
        with pytest.raises(ValueError):
            c.to_money(bad, MEL)


def test_ids_refs_and_variations() -> None:
    assert c.to_id(48, MEL) == c.to_id("48", MEL) == c.to_id(48.0, MEL) == "48"
    assert c.to_id(None, MEL) is None
    with pytest.raises(ValueError):
        c.to_id(4.5, MEL)
    au = {"code": "AU", "name": "Australia", "id": 12}
    assert (c.ref_id(au, MEL), c.ref_code(au, MEL), c.ref_name(au, MEL)) == ("12", "AU", "Australia")
    assert (c.ref_id("12", MEL), c.ref_code(12, MEL)) == ("12", None)
    assert c.variation_attributes(["Colour: red", "Size: XS", "Gift"], MEL) == [
        {"name": "Colour", "value": "red"},
        {"name": "Size", "value": "XS"},
        {"name": "", "value": "Gift"},
    ]
    assert c.variation_attributes(None, MEL) == []
    assert c.to_bool("false", MEL) is False and c.to_bool(1, MEL) is True


def test_a_bare_country_or_state_id_reads_through_the_shops_country_list() -> None:
    ctx = MappingContext(
        Platform.WEBCOMMANDER,
        "s",
        ZoneInfo("UTC"),
        "AUD",
        country_codes={"12": "AU"},
        state_codes={"66": ("AU", "VIC")},
    )
    assert c.country_code(12, ctx) == c.country_code("12", ctx) == "AU"
    assert c.country_code({"id": 99, "code": "nz"}, ctx) == "NZ"  # the object's own code wins
    assert c.country_code(99, ctx) is None and c.country_code(12, MEL) is None  # unknown: no guess
    assert c.state_code(66, ctx) == "VIC" and c.state_code({"id": 1, "code": "NSW"}, ctx) == "NSW"
    assert c.state_code(67, ctx) is None
    assert ctx.lookup_version != MEL.lookup_version == ""  # a new list re-maps the orders


def test_paid_total_is_net_of_refunds_and_zero_when_unpaid() -> None:
    v3_refunds = [{"id": 1, "total": "-7.50"}, {"id": 2, "total": "-2.50"}]
    assert c.paid_net(["2024-01-02T03:04:05", "30.00", v3_refunds], MEL) == Decimal("20.00")
    assert c.paid_net([True, "30.00", [{"amount": "30.00"}]], MEL) == Decimal("0.00")  # legacy v2 refunds
    assert c.paid_net([None, "30.00", []], MEL) == c.paid_net([False, "30.00", None], MEL) == Decimal("0.00")
    # Refunds without a payment date: the order was paid (its status says partially_refunded).
    assert c.paid_net([None, "30.00", [{"total": "-5.00"}]], MEL) == Decimal("25.00")


def test_unknown_status_keeps_the_raw_value() -> None:
    raw = {
        "id": 1,
        "orderStatus": "awaiting-pickup",
        "created": "2024-01-01T10:00:00",
        "orderSummary": {"subTotal": "1.00", "grandTotal": "1.00"},
    }
    order = load_mapping("webcommander").map(raw, MEL)
    assert order.status is OrderStatus.OTHER and order.status_raw == "awaiting-pickup"


def test_errors_name_the_raw_field() -> None:
    base = {
        "id": 1,
        "orderStatus": "pending",
        "created": "2024-01-01T10:00:00",
        "orderSummary": {"subTotal": "1.00", "grandTotal": "1.00"},
        "items": [{"id": i, "quantity": 1, "price": 1.0} for i in range(4)],
    }
    base["items"][3]["price"] = "abc"
    with pytest.raises(MappingError) as info:
        load_mapping("webcommander").map(base, MEL)
    assert (info.value.path, info.value.reason) == ("items[3].price", "not a number: 'abc'")
    with pytest.raises(MappingError, match=r"orderSummary\.grandTotal: is required"):
        load_mapping("webcommander").map({**base, "items": [], "orderSummary": {"subTotal": "1"}}, MEL)
    with pytest.raises(MappingError, match=r"billing: expected an object"):
        load_mapping("webcommander").map({**base, "items": [], "billing": "x"}, MEL)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"order": {"external_id": {"path": "id", "convert": "idd"}}},
            "order.external_id: unknown converter 'idd'",
        ),
        ({"order": {"status": {"path": "s", "table": "nope"}}}, "order.status: unknown table 'nope'"),
        (
            {"order": {"external_id": {"path": "id", "convrt": "id"}}},
            "order.external_id: unknown key(s) ['convrt']",
        ),
        (
            {"order": {"line_items": {"path": "items", "each": "ghost"}}},
            "order.line_items: unknown object 'ghost'",
        ),
        ({"order": {"colour": "x"}}, "unknown canonical field(s) ['colour']"),
        (
            {"order": {"refunds": {"concat": [{"path": "a", "each": "ghost"}]}}},
            "order.refunds.concat[0]: unknown object 'ghost'",
        ),
        (
            {"order": {"refunds": {"concat": [], "default": []}}},
            "order.refunds: concat takes a non-empty list of fields and nothing beside it",
        ),
        ({"orders": {}}, "needs an 'order' section"),
    ],
)
def test_broken_specs_fail_at_load_naming_the_key(spec: dict, message: str) -> None:
    with pytest.raises(MappingSpecError) as info:
        OrderMapper(spec, source="bad.yaml")
    assert "bad.yaml" in str(info.value) and message in str(info.value)


def test_mapping_files_are_found_and_broken_yaml_is_named(tmp_path: Path) -> None:
    assert load_mapping("webcommander").version.startswith("webcommander-")
    with pytest.raises(MappingSpecError, match="no mapping named 'magento'"):
        load_mapping("magento")
    bad = tmp_path / "x.yaml"
    bad.write_text("order: [\n")
    with pytest.raises(MappingSpecError, match=r"x\.yaml is not valid YAML"):
        load_mapping_file(bad)


def _order(shipping_tax: str, *taxes: dict) -> Order:
    return Order.model_validate(
        {
            "platform": "woocommerce",
            "shop": "s",
            "external_id": "1",
            "status": "completed",
            "currency": "EUR",
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            "subtotal": Decimal(10),
            "total": Decimal(12),
            "shipping_tax": Decimal(shipping_tax),
            "tax_lines": list(taxes),
        }
    )


def test_a_combined_rate_figure_is_split_only_where_the_order_proves_it() -> None:
    legacy = {"combined_total": Decimal("7.77"), "tax_total": None, "shipping_tax_total": None}
    one_rate = _order("0.93", legacy).tax_lines[0]
    assert (one_rate.tax_total, one_rate.shipping_tax_total) == (Decimal("6.84"), Decimal("0.93"))
    no_shipping_tax = _order("0", legacy, {**legacy, "combined_total": Decimal(1)}).tax_lines
    assert [(t.tax_total, t.shipping_tax_total) for t in no_shipping_tax] == [
        (Decimal("7.77"), Decimal(0)),
        (Decimal(1), Decimal(0)),
    ]
    unknown = _order("0.93", legacy, {**legacy, "combined_total": Decimal(1)}).tax_lines
    assert all(t.tax_total is None and t.shipping_tax_total is None for t in unknown)
    assert [t.combined_total for t in unknown] == [Decimal("7.77"), Decimal(1)]
    split = {"tax_total": Decimal("6.84"), "shipping_tax_total": Decimal("0.93")}
    assert _order("0.93", split).tax_lines[0].combined_total == Decimal("7.77")


def test_a_legacy_line_is_a_variation_by_its_attribute_meta_not_by_any_meta() -> None:
    ctx = MEL
    variation = c.product_unless_variation(
        ["21", [{"key": "size", "value": "M", "label": "Size"}], "T-Shirt - M"], ctx
    )
    taxonomy = c.product_unless_variation(["22", [{"key": "pa_colour", "value": "blue"}], "Mug"], ctx)
    backordered = c.product_unless_variation(["14", [{"key": "Backordered", "value": "1"}], "Mug"], ctx)
    add_on = c.product_unless_variation(
        ["15", [{"key": "gift-note", "value": "Happy birthday"}], "Card"], ctx
    )
    simple = c.product_unless_variation([16, [], "Beans - Dark"], ctx)
    assert (variation, taxonomy) == (None, None)
    assert (backordered, add_on, simple) == ("14", "15", "16")
