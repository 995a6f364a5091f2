"""Every table and column of the mirror explains itself in the file, and `ordersync schema --markdown`
prints the same dictionary (docs/data-dictionary.md is a generated copy that must not go stale)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.mirror.dictionary import TABLES, pending_comments
from ordersync.mirror.store import Mirror

DOCS = Path(__file__).parents[2] / "docs" / "data-dictionary.md"
DESCRIBED = [*TABLES, "shops", "runs"]


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
