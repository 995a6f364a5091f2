"""docs/analytics.md: each query runs against a sandbox backfill, gives the same rows in any session
time zone, and agrees with what this test computes itself from the base tables."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from ordersync.cli import app

from .test_cli import WOO, write_config

DOC = Path(__file__).parents[2] / "docs" / "analytics.md"
PAID = ("paid", "partially_refunded", "refunded")
ZONES = ["UTC", "Pacific/Kiritimati", "America/Los_Angeles"]


def _queries() -> dict[str, str]:
    blocks = re.findall(r"```sql\n-- ([a-z-]+)\n(.*?)```", DOC.read_text(), re.S)
    return dict(blocks)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("analytics")
    base = write_config(tmp_path)
    import yaml

    data = yaml.safe_load(base.read_text())
    config = write_config(tmp_path, shops=[*data["shops"], WOO])
    result = CliRunner().invoke(app, ["backfill", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    return tmp_path / "cli.duckdb"


def _run(mirror: Path, sql: str, zone: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(mirror), read_only=True) as con:
        con.execute(f"SET TimeZone = '{zone}'")
        return con.execute(sql).fetchall()


def test_the_document_holds_the_five_questions() -> None:
    assert list(_queries()) == [
        "daily-sales",
        "refund-rate",
        "top-products",
        "status-funnel",
        "taxes-per-rate",
        "top-customers",
    ]


@pytest.mark.parametrize("name", list(_queries()))
def test_each_query_gives_the_same_rows_in_any_session_time_zone(mirror: Path, name: str) -> None:
    sql = _queries()[name]
    first = _run(mirror, sql, ZONES[0])
    assert first, f"{name} gave no rows"
    for zone in ZONES[1:]:
        assert _run(mirror, sql, zone) == first, f"{name} changed with TimeZone {zone}"


def _base(mirror: Path, sql: str) -> list[tuple[Any, ...]]:
    return _run(mirror, sql, "UTC")


def test_the_answers_match_the_base_tables(mirror: Path) -> None:
    q = _queries()
    orders = _base(
        mirror,
        "SELECT platform, shop, order_id, status, payment_status, total, refunded_total, missing_since "
        "FROM orders",
    )
    listed = [o for o in orders if o[7] is None]
    paid = [o for o in listed if o[4] in PAID]
    shops = sorted({o[1] for o in orders})
    assert shops == ["demo", "woo"] and all(any(o[1] == s for o in paid) for s in shops)

    # 1. Daily sales: every paid order once, every refund of a listed order once.
    daily = _base(mirror, q["daily-sales"])
    refunds = _base(
        mirror,
        "SELECT r.shop, r.amount FROM refunds r JOIN orders o USING (platform, shop, order_id) "
        "WHERE o.missing_since IS NULL AND o.status NOT IN ('deleted', 'draft')",
    )
    for shop in shops:
        rows = [r for r in daily if r[0] == shop]
        assert sum(r[3] for r in rows) == sum(1 for o in paid if o[1] == shop)
        assert sum(r[4] for r in rows) == sum((o[5] for o in paid if o[1] == shop), Decimal(0))
        assert sum(r[5] for r in rows) == sum((a for s, a in refunds if s == shop), Decimal(0))

    # 2. Refund rate.
    rates = {r[0]: r for r in _base(mirror, q["refund-rate"])}
    for shop in shops:
        mine = [o for o in paid if o[1] == shop]
        refunded = [o for o in mine if o[6] > 0]
        _, _, count, with_refund, order_rate, money_rate = rates[shop]
        assert (count, with_refund) == (len(mine), len(refunded))
        assert abs(order_rate - len(refunded) / len(mine)) < 1e-4
        money = sum((o[6] for o in mine), Decimal(0)) / sum((o[5] for o in mine), Decimal(0))
        assert abs(float(money_rate) - float(money)) < 1e-4

    # 3. Top products per currency across shops, computed here from the lines: a line's SKU, else
    # (no route maps products here) shop:product id.
    lines = _base(
        mirror,
        "SELECT o.currency, coalesce(l.sku, l.shop || ':' || l.sold_product_id), l.shop, l.total "
        "FROM line_items l JOIN orders o USING (platform, shop, order_id) "
        "WHERE o.payment_status IN ('paid', 'partially_refunded', 'refunded') AND o.missing_since IS NULL"
        " AND o.status NOT IN ('deleted', 'draft')",
    )
    revenue: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    sellers: dict[str, set[str]] = defaultdict(set)
    for currency, product, shop, total in lines:
        revenue[currency][product] += total
        sellers[product].add(shop)
    top = _base(mirror, q["top-products"])
    assert {r[0] for r in top} == set(revenue) == {"AUD", "EUR"}
    for currency, products in revenue.items():
        expected = sorted(products.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert [(r[1], r[6]) for r in top if r[0] == currency] == expected
        assert all(set(r[3]) == sellers[r[1]] for r in top if r[0] == currency)

    # 4. Status funnel: every listed order in exactly one status.
    funnel = _base(mirror, q["status-funnel"])
    for shop in shops:
        counts: dict[str, int] = defaultdict(int)
        for o in listed:
            if o[1] == shop:
                counts[o[3]] += 1
        assert {r[1]: r[2] for r in funnel if r[0] == shop} == counts

    # 5. Taxes per rate and month add up to the paid orders' tax lines.
    taxes = _base(mirror, q["taxes-per-rate"])
    lines_tax = _base(
        mirror,
        "SELECT t.shop, "
        "coalesce(t.combined_total, coalesce(t.tax_total, 0) + coalesce(t.shipping_tax_total, 0)) "
        "FROM tax_lines t JOIN orders o USING (platform, shop, order_id) "
        "WHERE o.payment_status IN ('paid', 'partially_refunded', 'refunded') AND o.missing_since IS NULL",
    )
    for shop in shops:
        assert sum(r[5] for r in taxes if r[0] == shop) == sum(
            (t for s, t in lines_tax if s == shop), Decimal(0)
        )
    # 6. Top customers: orders per lower-cased e-mail, across shops.
    emails = _base(
        mirror, "SELECT lower(trim(customer_email)), shop FROM orders WHERE customer_email IS NOT NULL"
    )
    per_email: dict[str, int] = defaultdict(int)
    for email, _ in emails:
        per_email[hashlib.sha256(email.encode()).hexdigest()] += 1
    customers = _base(mirror, q["top-customers"])
    assert [(r[0], r[2]) for r in customers] == sorted(per_email.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert customers[0][2] > 1

    assert {r[3] for r in taxes if r[0] == "woo"} > {"DE-MWST-1"} or len(
        {r[3] for r in taxes if r[0] == "woo"}
    ) > 1
