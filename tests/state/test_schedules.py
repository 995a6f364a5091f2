"""Several daemons on one state store: each scheduled firing of a shop runs on exactly one of them,
and the shop keeps its schedule when a daemon goes away."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

from ordersync.state import schedules
from ordersync.state.store import StateStore

T0 = datetime(2026, 12, 7, 12, tzinfo=UTC)


def test_one_daemon_takes_each_period_and_another_takes_over_when_it_stops(ready_store: StateStore) -> None:
    period = 300.0
    # Daemon A fires on the minute, B ten seconds later: A takes each period, B skips it.
    assert schedules.claim(ready_store, "wc", period, now=T0, by="A")
    assert not schedules.claim(ready_store, "wc", period, now=T0 + timedelta(seconds=10), by="B")
    assert schedules.claim(ready_store, "wc", period, now=T0 + timedelta(seconds=300), by="A")
    assert not schedules.claim(ready_store, "wc", period, now=T0 + timedelta(seconds=310), by="B")
    # A timer a little early still takes its own firing (due at 90 % of the period).
    assert schedules.claim(ready_store, "wc", period, now=T0 + timedelta(seconds=599), by="A")
    # A is gone: B's next firing after the due time takes the shop, within one period.
    assert schedules.claim(ready_store, "wc", period, now=T0 + timedelta(seconds=910), by="B")
    claim = schedules.claims(ready_store)["wc"]
    assert claim.claimed_by == "B" and claim.next_due == T0 + timedelta(seconds=910 + 270)
    # Shops are independent.
    assert schedules.claim(ready_store, "woo", period, now=T0 + timedelta(seconds=910), by="A")


RACE = textwrap.dedent(
    """
    import json, sys, time
    from datetime import UTC, datetime
    from ordersync.state.schedules import claim
    from ordersync.state.store import StateStore

    store = StateStore(sys.argv[1])
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    print(json.dumps([claim(store, f"shop{n}", 60.0, now=now, by=sys.argv[3]) for n in range(20)]))
    store.dispose()
    """
)


def test_daemons_firing_at_the_same_instant_take_each_shop_once(ready_store: StateStore) -> None:
    """Three processes claim the same 20 first firings at once: each is won exactly once."""
    url = ready_store.engine.url.render_as_string(hide_password=False)
    start = datetime.now(UTC).timestamp() + 2.0
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, url, str(start), name], stdout=subprocess.PIPE, text=True
        )
        for name in ("A", "B", "C")
    ]
    won = [json.loads(p.communicate(timeout=60)[0]) for p in racers]
    assert all(p.returncode == 0 for p in racers)
    assert [sum(column) for column in zip(*won, strict=True)] == [1] * 20
    holders = {c.claimed_by for c in schedules.claims(ready_store).values()}
    assert holders <= {"A", "B", "C"} and len(schedules.claims(ready_store)) == 20


def test_a_cron_line_with_uneven_gaps_claims_each_of_its_firings(ready_store: StateStore) -> None:
    """At 09:00 and 17:00: the 09:00 claim covers the 8 hours to 17:00, not the 16 after it."""
    from ordersync.config import Schedule

    schedule = Schedule(cron="0 9,17 * * *")
    nine, five = datetime(2026, 12, 7, 9, tzinfo=UTC), datetime(2026, 12, 7, 17, tzinfo=UTC)
    assert schedule.until_next(nine) == 8 * 3600 and schedule.until_next(five) == 16 * 3600
    assert schedules.claim(ready_store, "wc", schedule.until_next(nine), now=nine, by="A")
    assert schedules.claim(ready_store, "wc", schedule.until_next(five), now=five, by="B")
    assert schedules.claim(ready_store, "wc", 8 * 3600, now=nine + timedelta(days=1), by="A")
