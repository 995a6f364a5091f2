"""One run per shop at a time, across processes: the lease in the state store, on SQLite and on
PostgreSQL (when ``.ci/run`` started one)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from ordersync.state import leases
from ordersync.state.store import StateStore
from ordersync.state.tables import shop_leases


def test_a_held_shop_is_refused_until_it_is_released(ready_store: StateStore) -> None:
    first = leases.try_acquire(ready_store, "wc", "backfill")
    assert first is not None
    assert leases.try_acquire(ready_store, "wc", "sync") is None  # this live process holds it
    assert leases.try_acquire(ready_store, "other", "sync") is not None  # shops are apart
    held = leases.current(ready_store, "wc")
    assert held is not None and held.holder == first.holder and held.kind == "backfill"
    leases.release(ready_store, first)
    assert leases.current(ready_store, "wc") is None
    assert leases.try_acquire(ready_store, "wc", "sync") is not None


def test_an_expired_lease_is_taken_over_and_its_holder_cannot_renew_it(ready_store: StateStore) -> None:
    stale = leases.try_acquire(ready_store, "wc", "backfill", seconds=0.05)
    assert stale is not None
    time.sleep(0.1)
    fresh = leases.try_acquire(ready_store, "wc", "sync")
    assert fresh is not None and fresh.holder != stale.holder
    assert leases.renew(ready_store, stale) is False
    assert leases.renew(ready_store, fresh) is True
    leases.release(ready_store, stale)  # releasing a lost lease leaves the new holder's alone
    assert leases.current(ready_store, "wc").holder == fresh.holder  # type: ignore[union-attr]


def test_a_lease_of_a_dead_process_on_this_host_is_free_at_once(ready_store: StateStore) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    now = datetime.now(UTC)
    with ready_store.engine.begin() as con:
        con.execute(
            insert(shop_leases).values(
                shop="wc",
                holder="dead",
                pid=int(gone.stdout),
                host=__import__("socket").gethostname(),
                kind="backfill",
                acquired_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
    taken = leases.try_acquire(ready_store, "wc", "sync")
    assert taken is not None and taken.holder != "dead"


def test_shop_lease_raises_shop_busy_naming_the_holder(ready_store: StateStore) -> None:
    async def scenario() -> str:
        async with leases.shop_lease(ready_store, "wc", "backfill"):
            try:
                async with leases.shop_lease(ready_store, "wc", "sync", wait=0.2):
                    pass
            except leases.ShopBusy as exc:
                return str(exc)
        return "not refused"

    message = asyncio.run(scenario())
    assert message.startswith("shop 'wc' is being synced by pid ") and "on host " in message
    assert leases.current(ready_store, "wc") is None  # released at the end of the block


HOLD = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from ordersync.logging import configure_logging
    from ordersync.state import leases
    from ordersync.state.store import StateStore

    configure_logging()  # log lines to stderr: stdout carries the outcome alone
    store = StateStore(sys.argv[1])

    async def main():
        held = []
        try:
            async with leases.shop_lease(store, "wc", sys.argv[2], wait=float(sys.argv[3]), seconds=1.5):
                held.append(time.time())
                try:
                    await asyncio.sleep(4.0)  # longer than the lease: it lasts only if it is renewed
                finally:
                    held.append(time.time())  # the work under the lease ends here, however it ends
            print(json.dumps({"held": held}))
        except leases.ShopBusy as exc:
            print(json.dumps({"busy": str(exc)}))
        except leases.LeaseLost:  # a loaded machine stalled a renewal: the holder stopped
            print(json.dumps({"held": held, "lost": True}))

    asyncio.run(main())
    store.dispose()
    """
)


def _holder(url: str, kind: str, wait: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, url, kind, str(wait)], stdout=subprocess.PIPE, text=True
    )


def test_two_processes_never_hold_one_shop_at_once(ready_store: StateStore, tmp_path: Path) -> None:
    url = ready_store.engine.url.render_as_string(hide_password=False)
    first = _holder(url, "backfill", 0)
    deadline = time.monotonic() + 20
    while leases.current(ready_store, "wc") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    skipper = _holder(url, "sync", 0)  # gives up at once, naming the holder
    waiter = _holder(url, "sync", 30)  # waits for the first to finish
    outcomes = [json.loads(p.communicate(timeout=60)[0]) for p in (first, skipper, waiter)]
    held_first, busy, held_second = outcomes
    assert "pid " in busy["busy"] and "backfill since" in busy["busy"], busy
    (_, a_end), (b_start, _) = held_first["held"], held_second["held"]
    assert b_start >= a_end, "the waiting process held the shop while the first still did"
    assert not held_second.get("lost"), "nothing took the lease from the waiter"
    assert leases.current(ready_store, "wc") is None


def test_a_holder_whose_lease_was_taken_over_is_stopped_with_lease_lost(ready_store: StateStore) -> None:
    async def scenario() -> tuple[str, bool]:
        try:
            async with leases.shop_lease(ready_store, "wc", "sync", seconds=0.6):
                with ready_store.engine.begin() as con:  # another process took it over
                    con.execute(update(shop_leases).values(holder="other"))
                await asyncio.sleep(5)
        except leases.LeaseLost as exc:
            return str(exc), asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        return "went on", False

    message, clean = asyncio.run(scenario())
    taken = "not renewed in time and taken over by another process"
    assert message == f"shop 'wc': lease lost ({taken}); the run was stopped"
    assert clean  # the task is not left half-cancelled: the caller goes on normally
    assert leases.current(ready_store, "wc").holder == "other"  # type: ignore[union-attr]


def test_a_holder_that_cannot_renew_before_expiry_stops_before_anyone_can_take_over(
    ready_store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stalled(*args: object, **kwargs: object) -> bool:
        time.sleep(1.5)  # the database hangs longer than the lease lasts
        return True

    monkeypatch.setattr(leases, "renew", stalled)

    async def scenario() -> float:
        async with leases.shop_lease(ready_store, "wc", "sync", seconds=0.6) as lease:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                stopped = datetime.now(UTC)
                assert stopped <= lease.expires_at, "the holder worked on past its lease"
                raise
        return -1.0

    with pytest.raises(leases.LeaseLost, match="no renewal came back before the lease expired"):
        asyncio.run(scenario())


def test_a_run_whose_lease_was_lost_is_recorded_failed_saying_so(
    ready_store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ordersync.state import records
    from ordersync.sync.pipeline import RunStats
    from ordersync.sync.runlog import recorded_run

    monkeypatch.setattr(leases, "LEASE_SECONDS", 0.6)

    async def scenario() -> None:
        async with recorded_run(ready_store, RunStats(shop="wc", kind="sync")):
            with ready_store.engine.begin() as con:
                con.execute(update(shop_leases).values(holder="other"))
            await asyncio.sleep(5)

    with pytest.raises(leases.LeaseLost):
        asyncio.run(scenario())
    [run] = records.last_runs(ready_store, "wc")
    assert run.status == "failed"
    assert run.error == (
        "lease lost: not renewed in time and taken over by another process; "
        "the next run starts from the last checkpoint"
    )


def test_a_lease_is_renewed_while_the_work_keeps_every_worker_thread_busy(ready_store: StateStore) -> None:
    """Renewals have threads of their own: work queued on asyncio's default pool for longer than the
    lease lasts (mirror writes, mapping, routing of many shops at once) must not make it lapse."""

    async def scenario() -> str:
        async with leases.shop_lease(ready_store, "wc", "sync", seconds=0.9):
            pool = min(32, (os.cpu_count() or 1) + 4)  # asyncio's default: a thread pool this big
            busy = [asyncio.to_thread(time.sleep, 1.0) for _ in range(3 * pool)]
            await asyncio.gather(*busy)
        return "held throughout"

    assert asyncio.run(scenario()) == "held throughout"
