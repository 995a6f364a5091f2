"""How a replicated order's lines find their product in the target shop."""

from __future__ import annotations

from decimal import Decimal

from ordersync.models import LineItem
from ordersync.operations import CreateOrder


def _line(**ids: str | None) -> LineItem:
    return LineItem(external_id="1", quantity=Decimal(1), subtotal=Decimal(1), total=Decimal(1), **ids)


def test_what_was_sold_then_the_sku_and_never_a_variations_parent() -> None:
    op = CreateOrder(
        source_shop="wc",
        source_order_id="9",
        product_ids={"495": "11", "600": "20:21", "601": "30"},
        products={"TSHIRT-L": "20:23"},
    )
    simple = _line(product_id="495", sold_product_id="495")
    variation = _line(product_id="601", variation_id="600", sold_product_id="600")
    by_sku = _line(product_id="601", variation_id="602", sold_product_id="602", sku="TSHIRT-L")
    parent_only = _line(product_id="601", variation_id="603", sold_product_id="603")
    legacy = _line(sold_product_id="600")  # the legacy API: the variation's id, no parent
    assert op.mapped_product(simple) == ("11", "product id 495")
    assert op.mapped_product(variation) == ("20:21", "product id 600")
    assert op.mapped_product(by_sku) == ("20:23", "SKU 'TSHIRT-L'")
    assert op.mapped_product(parent_only) is None  # every size would become product 30
    assert op.mapped_product(legacy) == ("20:21", "product id 600")
    assert op.mapped_product(_line(product_id="495")) == ("11", "product id 495")  # no sold id given
    assert CreateOrder.source_names(parent_only) == "no SKU, product id 603"
