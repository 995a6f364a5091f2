"""Cursors, run history and quarantine as runs use them, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import insert, select, update

from ordersync.state import records
from ordersync.state.store import StateStore, _alembic_config, head_revision
from ordersync.state.tables import quarantine, runs


def _bad(content_hash: str, record_id: str | None = "7", reason: str = "no total") -> records.Quarantined:
    return records.Quarantined(
        platform="woocommerce",
        shop="woo",
        record_id=record_id,
        path="total",
        reason=reason,
        payload='{"id": 7}',
        content_hash=content_hash,
        source_url="http://shop.test/orders?page=1",
    )


def test_a_cursor_is_one_row_per_shop_and_stream_replaced_in_place(ready_store: StateStore) -> None:
    assert records.get_cursor(ready_store, "woo", "orders") is None
    records.set_cursor(ready_store, "woo", "orders", {"modified": "2026-11-26T10:00:00+00:00", "edge": {}})
    records.set_cursor(
        ready_store, "woo", "orders", {"modified": "2026-11-26T11:00:00+00:00", "edge": {"5": "x"}}
    )
    records.set_cursor(ready_store, "woo", "backfill", {"done": True})
    records.set_cursor(ready_store, "wc", "orders", {"modified": "other shop"})
    assert records.get_cursor(ready_store, "woo", "orders") == {
        "modified": "2026-11-26T11:00:00+00:00",
        "edge": {"5": "x"},
    }
    assert set(records.shop_cursors(ready_store, "woo")) == {"orders", "backfill"}
    records.delete_cursor(ready_store, "woo", "backfill")
    assert set(records.shop_cursors(ready_store, "woo")) == {"orders"}


def test_runs_are_recorded_with_their_outcome_and_times_come_back_aware(ready_store: StateStore) -> None:
    first = records.start_run(ready_store, "woo", "backfill")
    records.finish_run(ready_store, first, status="failed", fetched=10, error="HTTP 503 from …")
    second = records.start_run(ready_store, "woo", "sync")
    (latest,) = records.last_runs(ready_store, "woo")
    assert latest.id == second and latest.status == "running" and latest.finished_at is None
    assert latest.started_at.tzinfo is not None
    assert abs(latest.started_at - datetime.now(UTC)) < timedelta(minutes=1)
    records.finish_run(
        ready_store, second, status="ok", fetched=5, loaded=2, unchanged=3, details={"requests": 4}
    )
    ok, failed = records.last_runs(ready_store, "woo", 2)
    assert (ok.status, ok.fetched, ok.loaded, ok.unchanged, ok.details) == ("ok", 5, 2, 3, {"requests": 4})
    assert (failed.status, failed.error) == ("failed", "HTTP 503 from …")
    assert records.last_runs(ready_store, "woo", status="failed")[0].id == first
    assert records.last_runs(ready_store, "other") == []


def test_a_run_left_running_by_a_dead_process_is_marked_abandoned(ready_store: StateStore) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)  # that process has exited
    dead = records.start_run(ready_store, "woo", "sync")
    live = records.start_run(ready_store, "woo", "sync")  # this process: alive, e.g. the daemon
    elsewhere = records.start_run(ready_store, "woo", "sync")
    other_shop = records.start_run(ready_store, "wc", "sync")
    with ready_store.engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.id == dead)
            .values(details={"pid": dead_pid, "host": socket.gethostname()})
        )
        connection.execute(
            update(runs).where(runs.c.id == elsewhere).values(details={"pid": 1, "host": "another-host"})
        )
    assert records.abandon_stale_runs(ready_store, "woo") == 2
    with ready_store.engine.connect() as connection:
        statuses = dict(connection.execute(select(runs.c.id, runs.c.status)).all())
    assert statuses == {dead: "abandoned", live: "running", elsewhere: "abandoned", other_shop: "running"}


def test_quarantine_keeps_one_row_per_payload_and_releases_records_that_map(ready_store: StateStore) -> None:
    records.record_quarantine(ready_store, [_bad("h1"), _bad("h2", record_id="8")])
    records.record_quarantine(ready_store, [_bad("h1", reason="still no total")])  # seen again
    assert records.quarantine_count(ready_store, "woo") == 2
    with ready_store.engine.connect() as connection:
        row = connection.execute(select(quarantine).where(quarantine.c.content_hash == "h1")).one()
    assert row.reason == "still no total" and row.payload == '{"id": 7}'
    assert records.aware(row.last_seen) >= records.aware(row.first_seen)  # type: ignore[operator]
    assert records.release_quarantine(ready_store, "woocommerce", "woo", ["7", "999"]) == 1
    assert records.release_quarantine(ready_store, "webcommander", "woo", ["8"]) == 0  # other platform
    assert records.quarantine_count(ready_store, "woo") == 1


def test_outbox_depth_counts_rows_per_status(ready_store: StateStore) -> None:
    now = datetime.now(UTC)
    with ready_store.engine.begin() as connection:
        for n, status in enumerate(["pending", "pending", "dead"]):
            connection.execute(
                insert(records.outbox).values(
                    idempotency_key=f"k{n}",
                    shop="wc",
                    kind="status",
                    payload={},
                    status=status,
                    created_at=now,
                )
            )
    assert records.outbox_depth(ready_store, "wc") == {"pending": 2, "dead": 1}
    assert records.outbox_depth(ready_store, "woo") == {}


def test_upgrading_from_the_first_revision_keeps_the_rows(store: StateStore) -> None:
    with store.engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "0001")
    with store.engine.begin() as connection:
        connection.execute(
            insert(runs).values(
                shop="woo",
                kind="backfill",
                started_at=datetime.now(UTC),
                status="ok",
                fetched=1,
                loaded=1,
                unchanged=0,
                quarantined=0,
            )
        )
    before, after = store.upgrade()
    assert (before, after) == ("0001", head_revision())
    (run,) = records.last_runs(store, "woo")
    assert run.fetched == 1 and run.details == {}


def test_a_bad_record_seen_twice_in_one_batch_or_changed_but_still_bad_is_one_row(
    ready_store: StateStore,
) -> None:
    records.record_quarantine(ready_store, [_bad("h1"), _bad("h1")])  # PostgreSQL refused this once
    assert records.quarantine_count(ready_store, "woo") == 1
    records.record_quarantine(ready_store, [_bad("h2", reason="still no total")])  # same order, new payload
    with ready_store.engine.connect() as connection:
        rows = connection.execute(select(quarantine.c.content_hash, quarantine.c.reason)).all()
    assert [tuple(r) for r in rows] == [("h2", "still no total")]
