"""The mirror can be deleted: `ordersync mirror rebuild` makes the same tables again from the shops,
and an incremental sync into a missing file backfills it instead of writing a fraction of the shop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from ordersync.cli import app

from .test_cli import WOO, write_config

runner = CliRunner()

# Columns that say when, by which run or from which address (the embedded sandbox takes a new port
# each run) a row was written, not what the shop holds.
_WHEN = {"loaded_at", "run_id", "received_at", "source_url", "quarantined_at"}
_SKIP = {"runs", "order_events", "mirror_meta", "shops", "mirror_batches"}  # history, not the shops


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return table_rows(con)


def table_rows(
    con: duckdb.DuckDBPyConnection, skip: frozenset[str] = frozenset()
) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the connection's database, sorted, without the columns that say when it was
    written (and those in ``skip``); a DuckLake's catalog tables (another database) are left out."""
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            " AND NOT temporary ORDER BY 1"
        ).fetchall()
    ]
    out = {}
    for table in names:
        if table in _SKIP:
            continue
        columns = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ?"
                " AND database_name = current_database() ORDER BY column_index",
                [table],
            ).fetchall()
            if r[0] not in _WHEN and r[0] not in skip
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


def test_a_refill_that_fails_before_its_first_batch_is_started_again(tmp_path: Path) -> None:
    """The mirror was deleted and the refill found the shop down: the next sync still refills the
    whole shop, not just what changed since the old cursor."""
    import asyncio

    from ordersync.config import parse_settings
    from ordersync.errors import ServerError
    from ordersync.sandbox.faults import Fault
    from ordersync.sandbox.server import SandboxServer
    from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
    from ordersync.sandbox.woocommerce.app import create_app as create_woo_app
    from ordersync.sandbox.woocommerce.store import WooCommerceStore
    from ordersync.state.store import StateStore
    from ordersync.sync.incremental import sync_shop

    woo = WooCommerceStore(orders=49, seed=4, timezone="Europe/Berlin", currency="EUR")
    app = create_woo_app(woo)
    with SandboxServer(app) as server:
        settings = parse_settings(
            {
                "workers": 0,
                "http": {"max_retries": 0, "resumes": 0},
                "mirror": {"path": str(tmp_path / "m.duckdb")},
                "state": {"url": f"sqlite:///{tmp_path / 'state.db'}", "auto_upgrade": True},
                "shops": [
                    {
                        "name": "woo",
                        "platform": "woocommerce",
                        "base_url": server.base_url,
                        "consumer_key": DEFAULT_CONSUMER_KEY,
                        "consumer_secret": DEFAULT_CONSUMER_SECRET,
                    }
                ],
            }
        )
        store: StateStore = settings.state.open_ready()
        shop = settings.shop("woo")

        def sync() -> None:
            asyncio.run(sync_shop(shop, settings, settings.mirror.open(), store))

        def count() -> int:
            with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
                return con.execute("SELECT count(*) FROM orders").fetchone()[0]  # type: ignore[index]

        try:
            sync()  # the first run: a backfill
            assert count() == 49
            (tmp_path / "m.duckdb").unlink()
            app.script("/orders", [Fault.server_error()])  # the refill meets the shop down
            with pytest.raises(ServerError):
                sync()
            sync()
            assert count() == 49
        finally:
            store.dispose()
