"""Three `ordersync run` daemons on one state store and one shop: each scheduled firing runs on one of
them, runs never overlap, and when the daemon that ran last is killed (-9) another carries the shop
on within a lease period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from ordersync.state import records, schedules
from ordersync.state.store import StateStore

from .conftest import Shop
from .test_ops import _config

PERIOD = 4.0
"""Long beside a run of this shop (about 1.5 s), so three uncoordinated daemons would run it almost
back to back."""


def _daemon(path: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", "run", "-c", str(path), "--log-json"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def _finished_runs(store: StateStore) -> list[records.RunRecord]:
    return [r for r in records.last_runs(store, "wc", 500) if r.finished_at is not None]


@pytest.mark.slow
def test_three_daemons_share_one_shops_schedule_and_survive_a_kill(small_shop: Shop, tmp_path: Path) -> None:
    config = _config(tmp_path, small_shop.base_url)
    config["shops"][0]["schedule"] = {"interval": PERIOD}
    config["mirror"]["lock_wait"] = 30
    path = tmp_path / "sync.yaml"
    path.write_text(yaml.safe_dump(config))
    store = StateStore(config["state"]["url"])
    store.upgrade()  # `ordersync db upgrade` before the daemons start, as deploy/ does
    daemons = []
    started = time.monotonic()
    for n in range(3):  # started a third of a period apart, so their timers fire at different times
        daemons.append(_daemon(path, tmp_path / f"daemon{n}.log"))
        time.sleep(PERIOD / 3)
    try:
        while len(_finished_runs(store)) < 4 and time.monotonic() - started < 90:
            for n, d in enumerate(daemons):
                assert d.poll() is None, (tmp_path / f"daemon{n}.log").read_text()[-3000:]
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        runs = _finished_runs(store)
        assert len(runs) >= 4
        # One firing per period across the three daemons, not three: no more runs than periods (90 % of
        # one apart), and none right after another (three uncoordinated daemons, a third of a period
        # out of step, start one within about a second of the last). A run's recorded start follows
        # its claim by however long it waited for the mirror file, so the gaps are compared loosely.
        ordered = sorted(runs, key=lambda r: r.started_at)
        gaps = [(b.started_at - a.started_at).total_seconds() for a, b in pairwise(ordered)]
        assert len(runs) <= elapsed / (PERIOD * schedules.SPACING) + 1, gaps
        assert min(gaps) >= PERIOD / 2, gaps
        # Runs never overlap (the shop's lease), whichever daemon ran them.
        for a, b in pairwise(ordered):
            assert a.finished_at is not None and b.started_at >= a.finished_at

        # Kill -9 the daemon that took the last firing; another takes the shop over.
        holder = schedules.claims(store)["wc"].claimed_by
        pid = int(holder.split()[1])
        victim = next(d for d in daemons if d.pid == pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed_at = time.time()
        deadline = time.monotonic() + 60  # a lease period at most, plus a run
        while time.monotonic() < deadline:
            claim = schedules.claims(store)["wc"]
            after = [
                r for r in _finished_runs(store) if r.started_at.timestamp() > killed_at and r.status == "ok"
            ]
            if after and claim.claimed_by != holder:
                break
            time.sleep(0.2)
        assert after and claim.claimed_by != holder, (claim, holder)
        assert str(os.getpid()) not in claim.claimed_by
    finally:
        for d in daemons:
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
        for d in daemons:
            d.wait(timeout=60)
        store.dispose()
    survivors = [d for d in daemons if d.pid != pid]
    assert all(d.returncode == 0 for d in survivors), [d.returncode for d in survivors]
