"""``ordersync status``: what it reports is what the state store holds, and it refuses a store it cannot
read correctly. Runs on SQLite always and on PostgreSQL when ``ORDERSYNC_TEST_POSTGRES_URL`` is set."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import insert, update
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.config import Settings, parse_settings
from ordersync.state import records
from ordersync.state.store import StateStore
from ordersync.state.tables import metadata, outbox, runs
from ordersync.status import collect, humanize, render

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("ORDERSYNC_TEST_POSTGRES_URL") else [])
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 's.db'}"
    return os.environ["ORDERSYNC_TEST_POSTGRES_URL"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[StateStore]:
    state = StateStore(_url(backend, tmp_path))
    if backend == "postgresql":
        with state.engine.begin() as connection:  # a clean database for each test
            metadata.drop_all(connection)
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    yield state
    state.dispose()


def _config(url: str, *, auto_upgrade: bool = False) -> dict[str, object]:
    return {
        "state": {"url": url, "auto_upgrade": auto_upgrade},
        "mirror": {"path": "/nonexistent/never-opened.duckdb"},
        "shops": [
            {
                "name": "woo",
                "platform": "woocommerce",
                "base_url": "https://woo.test",
                "consumer_key": "ck_abc",
                "consumer_secret": "cs_do_not_print",
            },
            {
                "name": "wc",
                "platform": "webcommander",
                "base_url": "https://wc.test",
                "uuid": "U-1",
                "access_token": "t0ken_do_not_print",
            },
            {
                "name": "quiet",
                "platform": "webcommander",
                "base_url": "https://quiet.test",
                "uuid": "U-2",
                "access_token": "t",
            },
        ],
    }


def _fill(store: StateStore) -> None:
    """Woo: an ok sync then a failed one, cursor 2m03s behind NOW, quarantine and outbox rows.
    WebCommander 'wc': a scan 1h behind and a backfill cut short at 750. 'quiet': nothing yet."""
    ok = records.start_run(store, "woo", "sync")
    records.finish_run(store, ok, status="ok", fetched=12, loaded=3, unchanged=9)
    failed = records.start_run(store, "woo", "sync")
    records.finish_run(store, failed, status="failed", fetched=5, loaded=1, error="shop 'woo': HTTP 503")
    with store.engine.begin() as connection:  # fixed times, so the assertions do not race the clock
        for run_id, started in ((ok, NOW - timedelta(minutes=10)), (failed, NOW - timedelta(minutes=5))):
            connection.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(started_at=started, finished_at=started + timedelta(seconds=4))
            )
        for i, status in enumerate(["pending", "pending", "retry", "done", "dead"]):
            connection.execute(
                insert(outbox).values(
                    idempotency_key=f"k{i}",
                    shop="woo",
                    kind="status",
                    payload={},
                    status=status,
                    attempts=0,
                    created_at=NOW,
                )
            )
    records.set_cursor(store, "woo", "orders", {"modified": "2026-11-26T11:57:57+00:00", "edge": {}})
    records.record_quarantine(
        store,
        [
            records.Quarantined("woocommerce", "woo", str(n), "total", "not money", "{}", f"h{n}", None)
            for n in range(2)
        ],
    )
    records.set_cursor(
        store, "wc", "scan", {"started_at": "2026-11-26T11:00:00+00:00", "finished_at": "2026-11-26T11:01:00"}
    )
    records.set_cursor(
        store,
        "wc",
        "backfill",
        {"done": False, "position": 750, "started_at": "2026-11-26T10:00:00+00:00", "fingerprint": {}},
    )


def test_collect_reports_what_the_store_holds(store: StateStore, backend: str, tmp_path: Path) -> None:
    store.upgrade()
    _fill(store)
    settings: Settings = parse_settings(_config(_url(backend, tmp_path)))
    woo, wc, quiet = collect(settings, store, now=NOW)

    assert (woo.shop, woo.platform) == ("woo", "woocommerce")
    assert woo.last_run is not None
    assert (woo.last_run.kind, woo.last_run.status, woo.last_run.error) == (
        "sync",
        "failed",
        "shop 'woo': HTTP 503",
    )
    assert (woo.last_run.fetched, woo.last_run.loaded) == (5, 1)
    assert woo.last_run.started_at == NOW - timedelta(minutes=5)
    assert woo.last_success_at == NOW - timedelta(minutes=10) + timedelta(seconds=4)  # the failure is not it
    assert woo.cursor_at == datetime(2026, 11, 26, 11, 57, 57, tzinfo=UTC)
    assert woo.behind_seconds == 123.0  # the cursor is later than the last good run's start
    assert woo.backfill is None
    assert woo.quarantined == 2
    assert (woo.outbox_pending, woo.outbox_dead) == (3, 1)  # 'retry' is still to be written; 'done' is not

    assert wc.cursor_at == datetime(2026, 11, 26, 11, 0, tzinfo=UTC)  # the scan's start, not its end
    assert wc.behind_seconds == 3600.0
    assert wc.backfill is not None and wc.backfill.position == 750
    assert wc.last_run is None and wc.last_success_at is None
    assert (wc.quarantined, wc.outbox_pending, wc.outbox_dead) == (0, 0, 0)

    assert quiet.cursor_at is None and quiet.behind_seconds is None and quiet.backfill is None

    # A quiet shop whose runs succeed is as current as its last good run, whatever its cursor says.
    records.set_cursor(store, "woo", "orders", {"modified": "2026-11-20T00:00:00+00:00", "edge": {}})
    (woo_again, *_) = collect(settings, store, now=NOW)
    assert woo_again.behind_seconds == 600.0

    console = Console(width=80, record=True)  # a default terminal: every column must still show
    console.print(render([woo, wc, quiet], now=NOW))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "outbox" in text and "antine" in text
    assert "2m 03s" in text and "1h 00m" in text and "750" in text and "no cursor" in text
    assert "woo: shop 'woo': HTTP 503" in text  # the failed run's error, under the table


def test_status_json_on_stdout(store: StateStore, backend: str, tmp_path: Path) -> None:
    store.upgrade()
    _fill(store)
    config = tmp_path / "sync.yaml"
    config.write_text(json.dumps(_config(_url(backend, tmp_path))))  # YAML reads JSON
    result = CliRunner().invoke(app, ["status", "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    at = datetime.fromisoformat(report["at"])
    woo, wc, quiet = report["shops"]
    assert woo["last_run"]["status"] == "failed" and woo["last_run"]["loaded"] == 1
    assert datetime.fromisoformat(woo["last_success_at"]) == NOW - timedelta(minutes=10) + timedelta(
        seconds=4
    )
    assert woo["cursor_at"] == "2026-11-26T11:57:57+00:00"
    cursor = datetime(2026, 11, 26, 11, 57, 57, tzinfo=UTC)
    assert woo["behind_seconds"] == pytest.approx((at - cursor).total_seconds(), abs=1e-3)
    assert (woo["quarantined"], woo["outbox_pending"], woo["outbox_dead"]) == (2, 3, 1)
    assert wc["backfill"]["position"] == 750 and wc["backfill"]["started_at"] == "2026-11-26T10:00:00+00:00"
    assert quiet["last_run"] is None and quiet["behind_seconds"] is None
    assert "do_not_print" not in result.output
    assert not Path("/nonexistent/never-opened.duckdb").exists()


def test_status_table(store: StateStore, backend: str, tmp_path: Path) -> None:
    store.upgrade()
    _fill(store)
    config = tmp_path / "sync.yaml"
    config.write_text(json.dumps(_config(_url(backend, tmp_path))))
    result = CliRunner().invoke(app, ["status", "-c", str(config)])
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert {"woo", "wc", "quiet"} <= set(rows)
    assert "woo: shop 'woo': HTTP 503" in result.stdout


def test_status_refuses_a_store_that_is_not_migrated(store: StateStore, backend: str, tmp_path: Path) -> None:
    config = tmp_path / "sync.yaml"
    config.write_text(json.dumps(_config(_url(backend, tmp_path))))
    result = CliRunner().invoke(app, ["status", "--json", "-c", str(config)])
    assert result.exit_code == 2
    assert "ordersync db upgrade" in " ".join(result.output.split())
    assert store.current_revision() is None  # refused, not migrated behind the operator's back


def test_humanize() -> None:
    assert [humanize(s) for s in (0, 45.9, 123, 3600, 3720, 86400 * 3 + 3600 * 4 + 59)] == [
        "0s",
        "45s",
        "2m 03s",
        "1h 00m",
        "1h 02m",
        "3d 04h",
    ]


def test_a_sample_backfill_does_not_make_a_stalled_shop_look_current(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    settings: Settings = parse_settings(_config(_url("sqlite", tmp_path)))
    whole = records.start_run(store, "woo", "sync")
    records.finish_run(store, whole, status="ok")
    sample = records.start_run(store, "woo", "backfill")
    records.finish_run(store, sample, status="ok", details={"sample": True})
    with store.engine.begin() as connection:
        for run_id, started in ((whole, NOW - timedelta(hours=5)), (sample, NOW - timedelta(minutes=1))):
            connection.execute(update(runs).where(runs.c.id == run_id).values(started_at=started))
    woo = collect(settings, store, now=NOW)[0]
    assert woo.behind_seconds == 5 * 3600
    store.dispose()
