"""Every table and column of the mirror explains itself in the file, and `ordersync schema --markdown`
prints the same dictionary (docs/data-dictionary.md is a generated copy that must not go stale)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.mirror.coverage import coverage
from ordersync.mirror.dictionary import TABLES, markdown, pending_comments
from ordersync.mirror.store import Mirror
from ordersync.mirror.views import VIEWS

DOCS = Path(__file__).parents[2] / "docs" / "data-dictionary.md"
DESCRIBED = [*TABLES, "shops", "runs", "product_map"]


def test_every_column_of_the_analyst_tables_has_a_comment_in_the_file(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.ensure_schema()
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        tables = dict(con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall())
        columns = con.execute("SELECT table_name, column_name, comment FROM duckdb_columns()").fetchall()
        assert pending_comments(con) == []  # written once: a second open writes no comment again
    assert all(tables[t] for t in DESCRIBED), {t: tables.get(t) for t in DESCRIBED if not tables.get(t)}
    bare = [(t, c) for t, c, comment in columns if t in DESCRIBED and not comment]
    assert not bare, f"columns without a comment: {bare}"


def test_every_view_and_every_view_column_explains_itself_too(tmp_path: Path) -> None:
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.ensure_schema()
    mirror.ensure_schema()  # views are recreated at each open: their comments with them
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        views = dict(
            con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall()
        )
        columns = con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE table_name IN ?",
            [list(views)],
        ).fetchall()
    assert set(views) == set(VIEWS) and all(views.values()), [v for v, c in views.items() if not c]
    bare = [(v, c) for v, c, comment in columns if not comment]
    assert not bare, f"view columns without a comment: {bare}"
    found = {(v, c): comment for v, c, comment in columns}
    # A column the view passes through carries its table's meaning; one it computes, its own.
    assert found[("v_orders", "paid_total")].startswith("what the customer has paid and not had back")
    assert "shop's time zone" in found[("v_daily_sales", "day_local")]


def test_schema_markdown_lists_every_table_and_column_and_the_copy_is_current(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "--markdown"])
    assert result.exit_code == 0
    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.ensure_schema()
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        columns = con.execute("SELECT table_name, column_name FROM duckdb_columns()").fetchall()
    for table in DESCRIBED:
        assert f"## `{table}`" in result.stdout
    missing = [(t, c) for t, c in columns if t in DESCRIBED and f"| `{c}` |" not in result.stdout]
    assert not missing
    assert "`v_daily_sales`" in result.stdout and "paid orders" in result.stdout
    assert DOCS.read_text() == result.stdout, "docs/data-dictionary.md is stale: regenerate it"


def test_who_fills_what_is_read_from_the_mapping_files() -> None:
    fills = coverage()
    assert fills["line_items"]["sku"] == {
        "webcommander": "—",
        "woocommerce_v3": "yes",
        "woocommerce_v2": "yes",
    }
    assert fills["tax_lines"]["rate_percent"] == {
        "webcommander": "—",
        "woocommerce_v3": "yes",
        "woocommerce_v2": "—",
    }
    assert fills["orders"]["completed_at"]["webcommander"] == "observed"
    assert fills["refund_lines"]["amount"]["webcommander"] == "—"  # its refunds list no items
    assert fills["tax_lines"]["combined_total"]["woocommerce_v2"] == "yes"
    assert fills["tax_lines"]["tax_total"]["woocommerce_v2"] == "—"  # a constant null is not a fill
    assert "| `line_items.sku` | — | yes | yes |" in markdown()


def test_the_measured_fill_view_counts_values_per_platform(tmp_path: Path) -> None:
    from tests.unit.test_mirror import batch_of, order

    mirror = Mirror(tmp_path / "m.duckdb")
    mirror.ensure_schema()
    noted = order("2").model_copy(update={"customer_note": "ring twice"})
    mirror.write(batch_of(order("1"), noted, order("3")))
    with duckdb.connect(str(mirror.path), read_only=True) as con:
        rows = con.execute(
            "SELECT column_name, row_count, filled, fill_percent FROM v_column_fill "
            "WHERE table_name = 'orders' AND platform = 'webcommander'"
            " AND column_name IN ('customer_note', 'total') ORDER BY 1"
        ).fetchall()
    assert rows == [("customer_note", 3, 1, 33.3), ("total", 3, 3, 100.0)]
