"""Backfill against a sandbox shop on loopback: exactly the shop's orders, idempotent, resilient."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from ordersync.errors import AuthError, BadResponseError
from ordersync.mirror.store import Mirror
from ordersync.sandbox.faults import Fault
from ordersync.sync.backfill import backfill_shop

from .conftest import Shop

SETTINGS_KEYS = ("token", "page_size", "concurrency", "retries", "timeout")


def run(shop: Shop, tmp_path: Path, **kwargs):
    settings = shop.settings(
        tmp_path,
        **{k: kwargs.pop(k) for k in list(kwargs) if k in SETTINGS_KEYS},
    )
    mirror = Mirror(settings.mirror.path)
    stats = asyncio.run(backfill_shop(settings.shops[0], settings, mirror, **kwargs))
    return stats, mirror


def query(mirror: Mirror, sql: str) -> list[tuple]:
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        return con.execute(sql).fetchall()


# What a run records about itself, not what it mirrors: each run adds its lineage row (left out) and
# stamps its shop's row with its start.
_RUN_RECORDS = {"shops": "* EXCLUDE (updated_at)"}


def dump(mirror: Mirror) -> dict[str, list[tuple]]:
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {
            t: con.execute(f"SELECT {_RUN_RECORDS.get(t, '*')} FROM {t} ORDER BY ALL").fetchall()
            for t in tables
            if t not in ("runs", "mirror_meta")  # the file's own history, not data
        }


def shop_figures(shop: Shop) -> dict[str, object]:
    """What the sandbox itself says, computed from its raw orders."""
    orders = shop.store.orders()
    payments = [p for o in orders for p in o["payments"]]
    return {
        "ids": sorted(str(o["id"]) for o in orders),
        "items": sum(len(o["items"]) for o in orders),
        "payments": sum(1 for p in payments if p["refundId"] is None),
        "refunds": sum(1 for p in payments if p["refundId"] is not None),
        "refunded": sum(
            (Decimal(str(p["amount"])) for p in payments if p["refundId"] is not None), Decimal(0)
        ),
        "total": sum((Decimal(o["orderSummary"]["grandTotal"]) for o in orders), Decimal(0)),
        "tax": sum((Decimal(o["orderSummary"]["totalTax"]) for o in orders), Decimal(0)),
        "comments": sum(len(o["orderComment"]) for o in orders),
        "shipments": sum(len(o["shipments"]) for o in orders),
    }


def test_backfill_lands_exactly_the_shops_orders_and_a_rerun_changes_nothing(
    shop: Shop, tmp_path: Path
) -> None:
    stats, mirror = run(shop, tmp_path)
    expected = shop_figures(shop)
    assert (stats.fetched, stats.loaded, stats.quarantined, stats.unchanged) == (3000, 3000, 0, 0)
    assert [r[0] for r in query(mirror, "SELECT order_id FROM orders ORDER BY order_id")] == expected["ids"]
    assert query(mirror, "SELECT count(*) FROM line_items")[0][0] == expected["items"]
    assert query(mirror, "SELECT count(*) FROM payments")[0][0] == expected["payments"]
    assert query(mirror, "SELECT count(*), sum(amount) FROM refunds")[0] == (
        expected["refunds"],
        expected["refunded"],
    )
    assert query(mirror, "SELECT sum(total), sum(tax_total) FROM orders")[0] == (
        expected["total"],
        expected["tax"],
    )
    assert query(mirror, "SELECT count(*) FROM comments")[0][0] == expected["comments"]
    assert query(mirror, "SELECT count(*) FROM shipments")[0][0] == expected["shipments"]
    assert query(mirror, "SELECT count(*) FROM raw_orders")[0][0] == 3000
    # Every order reconciles: lines + shipping + fees - discounts + taxes = total.
    assert (
        query(
            mirror,
            """
        SELECT count(*) FROM orders
        WHERE subtotal - discount_total + shipping_total + fee_total + tax_total <> total""",
        )[0][0]
        == 0
    )
    assert (
        query(
            mirror,
            """
        SELECT count(*) FROM orders o JOIN (SELECT platform, shop, order_id, sum(subtotal) s FROM line_items
        GROUP BY ALL) l USING (platform, shop, order_id) WHERE l.s <> o.subtotal""",
        )[0][0]
        == 0
    )
    before = dump(mirror)

    again, _ = run(shop, tmp_path)
    assert (again.fetched, again.loaded, again.unchanged) == (3000, 0, 3000)
    assert dump(mirror) == before


def test_a_changed_order_is_rewritten_and_only_it(shop: Shop, tmp_path: Path) -> None:
    run(shop, tmp_path)
    paid = next(o for o in shop.store.orders() if o["payments"][0]["status"] == "success")
    shop.store.add_comment(paid["id"], "Left at reception")
    shop.store.refund_payment(paid["payments"][0]["id"], "1.00")
    stats, mirror = run(shop, tmp_path)
    assert (stats.loaded, stats.unchanged) == (1, 2999)
    order_id = str(paid["id"])
    assert (
        query(
            mirror,
            f"SELECT count(*) FROM comments WHERE order_id = '{order_id}' AND text = 'Left at reception'",
        )[0][0]
        == 1
    )
    assert Decimal("1.00") in [
        r[0] for r in query(mirror, f"SELECT amount FROM refunds WHERE order_id = '{order_id}'")
    ]


def test_injected_429_5xx_and_html_pages_are_survived(flaky_shop: Shop, tmp_path: Path) -> None:
    stats, mirror = run(flaky_shop, tmp_path, page_size=50, retries=8)
    assert flaky_shop.app.faults_served > 0 and stats.retries == flaky_shop.app.faults_served
    assert stats.fetched == 1500
    assert query(mirror, "SELECT count(DISTINCT order_id), count(*) FROM orders")[0] == (1500, 1500)


def test_malformed_orders_are_quarantined_while_the_rest_load(small_shop: Shop, tmp_path: Path) -> None:
    bad_price = small_shop.store.get(5)
    bad_price["id"] = 9001
    bad_price["items"][0]["price"] = "abc"
    no_created = small_shop.store.get(6)
    no_created["id"] = 9002
    del no_created["created"]
    small_shop.store.add_raw(bad_price)
    small_shop.store.add_raw(no_created)
    stats, mirror = run(small_shop, tmp_path)
    assert (stats.fetched, stats.loaded, stats.quarantined) == (602, 600, 2)
    rows = query(
        mirror, "SELECT record_id, path, reason, payload->>'$.id' FROM quarantine ORDER BY record_id"
    )
    assert rows == [
        ("9001", "items[0].price", "not a number: 'abc'", "9001"),
        ("9002", "created", "is required but missing", "9002"),
    ]
    assert query(mirror, "SELECT count(*) FROM orders WHERE order_id IN ('9001', '9002')")[0][0] == 0


def test_wrong_access_token_is_a_clear_error_and_loads_nothing(small_shop: Shop, tmp_path: Path) -> None:
    with pytest.raises(AuthError) as info:
        run(small_shop, tmp_path, token="not-the-token")
    message = str(info.value)
    assert "shop 'wc'" in message and "HTTP 401" in message and "Invalid uuid or accessToken" in message
    assert "not-the-token" not in message
    assert small_shop.app.total_requests("/orders") == 1  # refused credentials are not retried


def test_a_page_that_stays_broken_fails_the_run_and_no_part_of_it_is_committed(
    small_shop: Shop, tmp_path: Path
) -> None:
    small_shop.app.script("offset=200", [Fault.bad_json()] * 3)
    with pytest.raises(BadResponseError) as info:
        run(small_shop, tmp_path, page_size=50, concurrency=1, retries=2)
    assert "offset=200" in str(info.value) and "HTTP 200" in str(info.value)
    mirror = Mirror(tmp_path / "mirror.duckdb")
    ids = [int(r[0]) for r in query(mirror, "SELECT order_id FROM orders")]
    # The four whole pages before it, in the shop's listing order, and nothing of it.
    assert sorted(ids) == sorted(small_shop.store.listed_ids()[:200])


def test_limit_and_since(small_shop: Shop, tmp_path: Path) -> None:
    stats, mirror = run(small_shop, tmp_path, limit=120)
    assert stats.fetched == 120 and query(mirror, "SELECT count(*) FROM orders")[0][0] == 120
    # The first 120 the shop lists (newest first here), each once.
    listed = {str(i) for i in small_shop.store.listed_ids()[:120]}
    assert {r[0] for r in query(mirror, "SELECT order_id FROM orders")} == listed
    _, whole = run(small_shop, tmp_path / "whole")
    cutoff = query(whole, "SELECT created_at FROM orders ORDER BY created_at LIMIT 1 OFFSET 59")[0][0]
    stats, mirror = run(small_shop, tmp_path / "b", since=cutoff)
    assert stats.fetched == 600 and stats.loaded == 600 - 59 and stats.skipped == 59


def test_a_request_that_hangs_past_the_timeout_is_retried(small_shop: Shop, tmp_path: Path) -> None:
    small_shop.app.script("offset=100", [Fault.hang_for(3)])
    stats, mirror = run(small_shop, tmp_path, page_size=50, concurrency=1, timeout=0.5)
    assert stats.retries == 1 and stats.fetched == 600
    assert query(mirror, "SELECT count(*) FROM orders")[0][0] == 600
