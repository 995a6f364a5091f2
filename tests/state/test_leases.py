"""One run per shop at a time, across processes: the lease in the state store, on SQLite and on
PostgreSQL (when ``.ci/run`` started one)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

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
        try:
            async with leases.shop_lease(store, "wc", sys.argv[2], wait=float(sys.argv[3]), seconds=0.6):
                began = time.time()
                await asyncio.sleep(4.0)  # longer than the lease: it lasts only if it is renewed
                print(json.dumps({"held": [began, time.time()]}))
        except leases.ShopBusy as exc:
            print(json.dumps({"busy": str(exc)}))

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
    assert leases.current(ready_store, "wc") is None
