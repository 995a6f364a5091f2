"""Lineage in the mirror: a `runs` table as the state store recorded each run, and `orders.run_id`
naming the run that last wrote each order, so an analyst can ask what the last sync changed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import yaml
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.config import parse_settings
from ordersync.state import records

from .test_cli import write_config

runner = CliRunner()


def test_each_order_names_the_run_that_wrote_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"])
    assert again.exit_code == 0, again.output

    settings = parse_settings(yaml.safe_load(config.read_text()))
    store = settings.state.open_ready()
    try:
        history = sorted(records.last_runs(store, "demo", 10), key=lambda r: r.id)
    finally:
        store.dispose()
    assert [r.status for r in history] == ["ok", "ok"]
    with duckdb.connect(str(tmp_path / "cli.duckdb"), read_only=True) as con:
        runs = con.execute(
            "SELECT run_id, shop, kind, status, fetched, loaded, unchanged, finished_at >= started_at "
            "FROM runs ORDER BY run_id"
        ).fetchall()
        writers = con.execute("SELECT run_id, count(*) FROM orders GROUP BY ALL").fetchall()
        comment = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'orders' AND column_name = 'run_id'"
        ).fetchone()
    assert runs == [
        (history[0].id, "demo", "backfill", "ok", 300, 300, 0, True),
        (history[1].id, "demo", "backfill", "ok", 300, 0, 300, True),
    ]
    # The second run found every order unchanged, so each still names the first.
    assert writers == [(history[0].id, 300)]
    assert comment is not None and "runs.run_id" in comment[0]
