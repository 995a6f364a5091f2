"""The product dimension: a WebCommander product, which has no SKU in its API, is one product with the
WooCommerce one a route's product map ties it to, by SKU or by a (variation) product id."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ordersync.config import Route
from ordersync.mirror.store import Mirror
from ordersync.models import Order, Platform
from ordersync.sync.sources import product_rows
from tests.unit.test_mirror import batch_of, order


def _sold(o: Order, shop: str, platform: str, lines: list[tuple[str, str | None]]) -> Order:
    """The order in ``shop`` selling products (sold id, SKU)."""
    items = [
        line.model_copy(update={"sold_product_id": pid, "product_id": pid, "sku": sku})
        for line, (pid, sku) in zip(o.line_items, lines, strict=True)
    ]
    return o.model_copy(update={"shop": shop, "platform": Platform(platform), "line_items": items})


def test_routes_product_maps_give_webcommander_lines_the_woocommerce_skus(tmp_path: Path) -> None:
    routes = [
        Route.model_validate({"from": "woo", "to": "wc", "changes": ["orders"], "products": {"MUG": "495"}}),
        # A WooCommerce variation is named parent:variation in a map.
        Route.model_validate(
            {"from": "wc", "to": "woo", "changes": ["orders"], "product_ids": {"510": "20:21", "600": "30"}}
        ),
    ]
    mirror = Mirror(tmp_path / "m.duckdb")
    for shop, platform in (("wc", "webcommander"), ("woo", "woocommerce")):
        row = {
            "shop": shop,
            "platform": platform,
            "api": "x",
            "timezone": "UTC",
            "currency": "AUD",
            "base_url": "u",
        }
        mirror.record_shop(row, products=product_rows(shop, routes))
    woo = _sold(order("1"), "woo", "woocommerce", [("11", "MUG"), ("21", "TSHIRT-S")])
    wc = _sold(order("2"), "wc", "webcommander", [("495", None), ("510", None)])
    lone = _sold(order("3", items=1), "wc", "webcommander", [("600", None)])  # woo never sold product 30
    mirror.write(batch_of(woo, wc, lone))
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        keys = con.execute(
            "SELECT shop, sold_product_id, product_key FROM v_order_lines ORDER BY ALL"
        ).fetchall()
        products = con.execute("SELECT product_key, shops FROM v_products ORDER BY 1").fetchall()
    assert keys == [
        ("wc", "495", "MUG"),
        ("wc", "510", "TSHIRT-S"),
        ("wc", "600", "wc:600"),  # no SKU known for its peer: the shop's own key
        ("woo", "11", "MUG"),
        ("woo", "21", "TSHIRT-S"),
    ]
    assert products == [("MUG", ["wc", "woo"]), ("TSHIRT-S", ["wc", "woo"]), ("wc:600", ["wc"])]
