"""The mirror can be deleted: `ordersync mirror rebuild` makes the same tables again from the shops,
and an incremental sync into a missing file backfills it instead of writing a fraction of the shop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import yaml
from typer.testing import CliRunner

from ordersync.cli import app

from .test_cli import WOO, write_config

runner = CliRunner()

# Columns that say when, by which run or from which address (the embedded sandbox takes a new port
# each run) a row was written, not what the shop holds.
_WHEN = {"loaded_at", "run_id", "received_at", "source_url", "quarantined_at"}
_SKIP = {"runs", "order_events", "mirror_meta", "shops"}


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(path), read_only=True) as con:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        out = {}
        for table in names:
            if table in _SKIP:
                continue
            columns = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
                    [table],
                ).fetchall()
                if r[0] not in _WHEN
            ]
            out[table] = con.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY ALL").fetchall()
    return out


def _config(tmp_path: Path) -> Path:
    base = yaml.safe_load(write_config(tmp_path).read_text())
    return write_config(tmp_path, shops=[*base["shops"], WOO])


def test_a_rebuilt_mirror_has_the_same_tables(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"]).exit_code == 0
    mirror = tmp_path / "cli.duckdb"
    before = _tables(mirror)
    assert sum(len(rows) for rows in before.values()) > 1000 and before["orders"]

    result = runner.invoke(app, ["mirror", "rebuild", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "before-rebuild" in result.output
    after = _tables(mirror)
    assert after.keys() == before.keys()
    for table in before:
        assert after[table] == before[table], table
    # The file before is kept beside it until the operator deletes it.
    assert _tables(mirror.with_name("cli.duckdb.before-rebuild")) == before


def test_a_sync_into_a_deleted_mirror_backfills_every_shop(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"]).exit_code == 0
    mirror = tmp_path / "cli.duckdb"
    before = _tables(mirror)
    mirror.unlink()
    result = runner.invoke(app, ["sync", "--once", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    after = _tables(mirror)
    # WooCommerce's cursor alone would have fetched only what changed since the backfill: nothing.
    assert len(after["orders"]) == len(before["orders"]) and after == before
