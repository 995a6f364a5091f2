"""One meaning per column: the same order, replicated from WooCommerce into WebCommander, paid,
partly refunded and completed, read back from both shops through their own APIs into one mirror. Each
platform's row must satisfy the dictionary's definitions, and the two rows must agree."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from ordersync.state import links as state_links
from ordersync.state.store import StateStore
from tests.e2e.writeback_shops import Shops, serve_shops

ORDER_COLUMNS = (
    "platform, status, payment_status, total, subtotal, tax_total, shipping_total, discount_total, "
    "paid_total, refunded_total, completed_at, created_at"
)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Both shops' copies of a paid order (refunded 7.50, then completed in WebCommander) and of an
    unpaid one, as the mirror holds them."""
    tmp_path = tmp_path_factory.mktemp("one_meaning")
    for shops in serve_shops(tmp_path):
        store = shops.store()
        try:
            yield _scenario(shops, store)
        finally:
            store.dispose()


def _counterpart(store: StateStore, woo_id: int) -> str:
    with store.engine.connect() as connection:
        target = state_links.counterpart(connection, "woo", str(woo_id), "wc")
    assert target is not None
    return target


def _scenario(shops: Shops, store: StateStore) -> dict[str, Any]:
    shops.cycle(store)  # the first run: backfill; routes replicate only what comes after
    paid = shops.new_woo_order(["SKU-001", "TSHIRT-S"])
    unpaid = shops.new_woo_order(["SKU-002"], paid=False)
    shops.cycle(store)
    paid_wc, unpaid_wc = _counterpart(store, paid), _counterpart(store, unpaid)
    shops.woo.create_refund(paid, {"amount": "7.50", "reason": "Damaged mug", "api_refund": False})
    shops.cycle(store)
    shops.wc.set_status(paid_wc, "completed")
    shops.cycle(store)
    shops.cycle(store)  # WooCommerce's completion (written by the route) is read back
    with duckdb.connect(str(shops.tmp_path / "mirror.duckdb"), read_only=True) as con:

        def rows(sql: str, *ids: str) -> dict[str, tuple[Any, ...]]:
            found = con.execute(sql, [list(ids)]).fetchall()
            return {r[0]: r[1:] if len(r) > 2 else r[1] for r in found}

        orders = {
            key: rows(
                f"SELECT platform, {ORDER_COLUMNS.split(', ', 1)[1]} FROM orders WHERE order_id IN ?",
                str(woo_id),
                wc_id,
            )
            for key, woo_id, wc_id in (("paid", paid, paid_wc), ("unpaid", unpaid, unpaid_wc))
        }
        countries = rows(
            "SELECT platform, list(country_code ORDER BY kind) FROM order_addresses "
            "WHERE order_id IN ? AND kind = 'billing' GROUP BY platform",
            str(paid),
            paid_wc,
        )
        products = rows(
            "SELECT platform, list(product_key ORDER BY product_key) FROM v_order_lines "
            "WHERE order_id IN ? GROUP BY platform",
            str(paid),
            paid_wc,
        )
        rates = rows(
            "SELECT platform, list(rate_percent) FROM tax_lines WHERE order_id IN ? GROUP BY platform",
            str(paid),
            paid_wc,
        )
        customers = rows(
            "SELECT DISTINCT c.platform, c.email_key FROM v_customers c JOIN orders o "
            "ON o.shop = c.shop AND (c.customer_key = o.shop || ':' || o.customer_id "
            "OR c.customer_key = 'guest:' || sha256(lower(trim(o.customer_email)))) WHERE o.order_id IN ?",
            str(paid),
            paid_wc,
        )
        dimension = con.execute(
            "SELECT product_key, shops FROM v_products"
            " WHERE product_key IN ('SKU-001', 'TSHIRT-S') ORDER BY 1"
        ).fetchall()
    return {
        "dimension": dimension,
        "orders": orders,
        "countries": countries,
        "products": products,
        "rates": rates,
        "customers": customers,
    }


def _order(mirrored: dict[str, Any], which: str, platform: str) -> dict[str, Any]:
    names = ORDER_COLUMNS.split(", ")[1:]
    return dict(zip(names, mirrored["orders"][which][platform], strict=True))


@pytest.mark.parametrize("platform", ["woocommerce", "webcommander"])
def test_each_platform_fills_the_money_columns_by_the_dictionarys_definitions(
    mirrored: dict[str, Any], platform: str
) -> None:
    order = _order(mirrored, "paid", platform)
    # total: incl. tax, before refunds, and the sum of its parts.
    parts = order["subtotal"] - order["discount_total"] + order["shipping_total"] + order["tax_total"]
    assert order["total"] == parts
    # refunded_total: positive, incl. tax. paid_total: net of refunds.
    assert order["refunded_total"] == Decimal("7.50")
    assert order["paid_total"] == order["total"] - order["refunded_total"]
    assert order["payment_status"] == "partially_refunded"
    # Nothing paid is 0, not NULL.
    unpaid = _order(mirrored, "unpaid", platform)
    assert unpaid["paid_total"] == 0 and unpaid["payment_status"] == "unpaid"


@pytest.mark.parametrize("platform", ["woocommerce", "webcommander"])
def test_each_platform_gives_a_completion_time_an_iso_country_and_a_cross_shop_product_key(
    mirrored: dict[str, Any], platform: str
) -> None:
    order = _order(mirrored, "paid", platform)
    # completed_at: the shop's own (WooCommerce) or observed (WebCommander), never before creation.
    assert order["status"] == "completed"
    assert order["completed_at"] is not None and order["completed_at"] >= order["created_at"]
    # WebCommander names the country by id only; the shop's country_ids give it its ISO code.
    assert mirrored["countries"][platform] == ["DE"]
    # WebCommander lines carry no SKU: the route's product map gives them the WooCommerce SKUs.
    assert mirrored["products"][platform] == ["SKU-001", "TSHIRT-S"]
    # A rate where the API gives one (REST v3); WebCommander's API gives none, which stays NULL.
    rates = mirrored["rates"][platform]
    assert all(r is not None for r in rates) if platform == "woocommerce" else rates == [None]


def test_both_copies_agree_on_every_money_column_and_on_the_customer(mirrored: dict[str, Any]) -> None:
    for which in ("paid", "unpaid"):
        woo, wc = _order(mirrored, which, "woocommerce"), _order(mirrored, which, "webcommander")
        # (The split of the total into subtotal and tax is each shop's own: WebCommander taxes the
        # copy by its own rules. What the customer paid, got back and owes is the same order.)
        for column in ("total", "paid_total", "refunded_total", "payment_status"):
            assert woo[column] == wc[column], f"{which} {column}: {woo} {wc}"
    keys = mirrored["customers"]
    assert keys["woocommerce"] == keys["webcommander"] and keys["woocommerce"][0] is not None


def test_top_products_across_both_shops_is_one_product_per_sku(mirrored: dict[str, Any]) -> None:
    """The product dimension has one row for a product both shops sell, naming both."""
    assert mirrored["dimension"] == [("SKU-001", ["wc", "woo"]), ("TSHIRT-S", ["wc", "woo"])]
