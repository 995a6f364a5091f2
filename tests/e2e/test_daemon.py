"""``ordersync run``: the daemon as an operator runs it (a subprocess against sandbox shops on loopback,
stopped with SIGTERM), its refusals, and its scheduling rules with a fake sync."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from ordersync import daemon
from ordersync.config import Settings, ShopConfig, parse_settings
from ordersync.errors import ServerError
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
from ordersync.sandbox.webcommander.app import create_app as webcommander_app
from ordersync.sandbox.webcommander.store import WebCommanderStore
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from ordersync.sandbox.woocommerce.app import create_app as woocommerce_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore
from ordersync.state import records
from ordersync.state.store import StateStore, head_revision

INTERVAL = 1.0


@dataclass
class Shops:
    webcommander: WebCommanderStore
    woocommerce: WooCommerceStore
    config: dict[str, Any]


@pytest.fixture
def shops(tmp_path: Path) -> Iterator[Shops]:
    """Both sandbox shops on loopback, with their stores at hand to change orders behind the daemon."""
    wc = WebCommanderStore(orders=200, seed=7)
    woo = WooCommerceStore(orders=200, seed=11)
    with SandboxServer(webcommander_app(wc)) as wc_server, SandboxServer(woocommerce_app(woo)) as woo_server:
        config = {
            "workers": 1,
            "mirror": {"path": str(tmp_path / "mirror.duckdb"), "lock_wait": 20},
            "state": {"url": f"sqlite:///{tmp_path / 'state.db'}", "auto_upgrade": True},
            "http": {"max_retries": 2, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 10},
            "shops": [
                {
                    "name": "wc",
                    "platform": "webcommander",
                    "base_url": wc_server.base_url,
                    "uuid": DEFAULT_UUID,
                    "access_token": DEFAULT_TOKEN,
                    "timezone": "Australia/Melbourne",
                    "currency": "AUD",
                    "page_size": 100,
                    "schedule": {"interval": INTERVAL},
                },
                {
                    "name": "woo",
                    "platform": "woocommerce",
                    "base_url": woo_server.base_url,
                    "consumer_key": DEFAULT_CONSUMER_KEY,
                    "consumer_secret": DEFAULT_CONSUMER_SECRET,
                    "timezone": "Europe/Berlin",
                    "currency": "EUR",
                    # Re-reading open orders' notes costs a request each, which would make every run
                    # longer than the interval; this test is about the schedule.
                    "notes_refresh": "none",
                    "schedule": {"interval": INTERVAL},
                },
            ],
        }
        yield Shops(wc, woo, config)


def _start(config: dict[str, Any], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    path = tmp_path / "sync.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "daemon.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", "run", "-c", str(path), "--log-json"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    return process, log


def _runs(store: StateStore, shop: str) -> list[records.RunRecord]:
    return records.last_runs(store, shop, 1000)


def _wait(what: str, deadline: float, check: Any, process: subprocess.Popen[bytes], log: Path) -> Any:
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(
                f"the daemon exited ({process.returncode}) while waiting for {what}:\n{log.read_text()}"
            )
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-5000:]}")


def _finished(run: records.RunRecord) -> datetime:
    assert run.finished_at is not None
    return run.finished_at


def _seconds(run: records.RunRecord) -> float:
    return (_finished(run) - run.started_at).total_seconds()


def _mirror_status(path: Path, shop: str, order_id: str) -> str | None:
    """The order's raw status, or None while a run holds the file (it is opened read-only)."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            row = con.execute(
                "SELECT status_raw FROM orders WHERE shop = ? AND order_id = ?", [shop, order_id]
            ).fetchone()
    except duckdb.IOException:
        return None
    return row[0] if row else None


@pytest.mark.slow
def test_daemon_keeps_the_mirror_current_and_stops_cleanly(shops: Shops, tmp_path: Path) -> None:
    process, log = _start(shops.config, tmp_path)
    store = StateStore(shops.config["state"]["url"])
    try:
        started = time.monotonic()

        def synced() -> bool:
            # WooCommerce's first run is a backfill; wait for a steady-state sync of each shop.
            if store.current_revision() != head_revision():
                return False  # the daemon migrates the store first (auto_upgrade)
            return all(
                any(r.status == "ok" and r.kind == "sync" for r in _runs(store, shop))
                for shop in ("wc", "woo")
            )

        _wait("a sync of each shop", started + 90, synced, process, log)
        first_runs = time.monotonic() - started

        wc_order = next(o for o in shops.webcommander.orders() if o["orderStatus"] != "cancelled")
        woo_id = next(
            i for i in shops.woocommerce.order_ids() if shops.woocommerce.get(i).status != "completed"
        )
        changed_at = datetime.now(UTC)
        changed = time.monotonic()
        shops.webcommander.set_status(wc_order["id"], "cancelled")
        shops.woocommerce.update_order(woo_id, {"status": "completed"})

        mirror = Path(shops.config["mirror"]["path"])
        wanted = {("wc", str(wc_order["id"])): "cancelled", ("woo", str(woo_id)): "completed"}
        seen: dict[str, float] = {}

        def both_seen() -> bool:
            for (shop, order_id), status in wanted.items():
                if shop not in seen and _mirror_status(mirror, shop, order_id) == status:
                    seen[shop] = time.monotonic()
            return len(seen) == len(wanted)

        _wait("both changes in the mirror", changed + 30, both_seen, process, log)

        def carriers_recorded() -> bool:
            # The mirror has the change once its batch commits; the run is recorded a moment later.
            return all(
                any(r.finished_at and _finished(r) > changed_at and r.loaded for r in _runs(store, shop))
                for shop in ("wc", "woo")
            )

        _wait("the runs that carried the changes", time.monotonic() + 15, carriers_recorded, process, log)

        # A change reaches the mirror within two intervals of the last run that finished before it,
        # plus the run that carries it.
        runs = {shop: [r for r in _runs(store, shop)[::-1] if r.finished_at] for shop in ("wc", "woo")}
        for shop in ("wc", "woo"):
            previous = max(_finished(r) for r in runs[shop] if _finished(r) <= changed_at)
            carrier = next(r for r in runs[shop] if _finished(r) > changed_at and r.loaded)
            bound = 2 * INTERVAL + _seconds(carrier)
            took = (_finished(carrier) - previous).total_seconds()
            observed = seen[shop] - changed + (changed_at - previous).total_seconds()
            print(
                f"{shop}: loaded {took:.2f}s and seen {observed:.2f}s after the previous run ended "
                f"(bound {bound:.2f}s: interval {INTERVAL}s, its run {_seconds(carrier):.2f}s)"
            )
            assert took <= bound, (shop, took, bound)
            assert observed <= bound + 0.5  # 0.5 s: this test's polling of the file between runs

        def in_flight() -> list[records.RunRecord]:
            return [r for shop in ("wc", "woo") for r in _runs(store, shop)[:1] if r.status == "running"]

        # Stop in the middle of a run, the case that must leave the state consistent.
        cut = _wait("a run in flight", time.monotonic() + 15, in_flight, process, log)[0]
        process.send_signal(signal.SIGTERM)
        stop_sent = time.monotonic()
        assert process.wait(timeout=15) == 0, log.read_text()
        stopped_in = time.monotonic() - stop_sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    print(f"first syncs after {first_runs:.1f}s; stopped {stopped_in:.2f}s after SIGTERM")
    assert stopped_in < 10
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]  # JSON only
    names = [e["event"] for e in events]
    assert names[0] == "daemon.start" and names[-1] == "daemon.stopped"
    start = events[0]
    assert [(s["shop"], s["schedule"]) for s in start["shops"]] == [("wc", "every 1s"), ("woo", "every 1s")]
    assert "run.done" in names
    assert all(r.status != "running" for shop in ("wc", "woo") for r in _runs(store, shop))
    (cut_now,) = [r for r in _runs(store, cut.shop) if r.id == cut.id]
    print(f"the run in flight at SIGTERM ({cut.shop} {cut.kind}) ended {cut_now.status}")
    assert cut_now.status in ("abandoned", "ok")  # 'ok': it finished between the poll and the signal
    text = log.read_text()
    assert DEFAULT_TOKEN not in text and DEFAULT_CONSUMER_SECRET not in text and DEFAULT_UUID not in text
    store.dispose()


def _refusal(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "sync.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _offline_config(tmp_path: Path, **state: Any) -> dict[str, Any]:
    return {
        "state": {"url": f"sqlite:///{tmp_path / 'fresh' / 'state.db'}", **state},
        "mirror": {"path": str(tmp_path / "mirror.duckdb")},
        "shops": [
            {
                "name": "wc",
                "platform": "webcommander",
                "base_url": "http://127.0.0.1:9",
                "uuid": "U-1",
                "access_token": "t0ken-not-for-logs",
                "schedule": {"interval": 60},
            }
        ],
    }


def test_run_refuses_a_store_that_is_not_migrated(tmp_path: Path) -> None:
    result = _refusal(_offline_config(tmp_path, auto_upgrade=False), tmp_path)
    assert result.returncode == 2, result.stderr
    assert "ordersync db upgrade" in " ".join(result.stderr.split())
    assert not (tmp_path / "mirror.duckdb").exists()


def test_run_refuses_a_bad_config_naming_the_key(tmp_path: Path) -> None:
    config = _offline_config(tmp_path)
    config["shops"][0]["schedule"] = {"interval": 60, "cron": "*/5 * * * *"}
    result = _refusal(config, tmp_path)
    assert result.returncode == 2
    assert "shops.0.webcommander.schedule" in result.stderr and "exactly one of" in result.stderr
    assert "t0ken-not-for-logs" not in result.stderr


# -- scheduling, with a fake sync ---------------------------------------------------------------------
def _settings(tmp_path: Path, names: list[str], interval: float) -> Settings:
    config = _offline_config(tmp_path, auto_upgrade=True)
    shop = config["shops"][0]
    config["shops"] = [{**shop, "name": name, "schedule": {"interval": interval}} for name in names]
    return parse_settings({**config, "workers": 0})


def _run_for(settings: Settings, seconds: float, calls: list[Any]) -> None:
    """Run the daemon, then stop it as an operator would, with SIGTERM."""

    async def main() -> None:
        task = asyncio.create_task(daemon.run_daemon(settings))
        await asyncio.sleep(seconds)
        assert calls and not task.done()  # started: its signal handlers are in place
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def _job_id(task: asyncio.Task[Any]) -> str | None:
    """The scheduler job a task runs (the outbox drain is a job of its own, beside the shops')."""
    frame = getattr(task.get_coro(), "cr_frame", None)
    job = frame.f_locals.get("job") if frame is not None else None
    return getattr(job, "id", None)


class SlowSync:
    """Stands in for sync_shop: takes ``seconds`` and notes when each run started and ended."""

    def __init__(self, seconds: float, fail_first: bool = False):
        self.seconds = seconds
        self.fail_first = fail_first
        self.calls: list[str] = []
        self.spans: list[tuple[str, float, float]] = []
        self.active: dict[str, int] = {}
        self.max_per_shop = 0
        self.max_total = 0
        self.max_ticks = 0

    async def __call__(self, shop: ShopConfig, *args: Any, **kwargs: Any) -> None:
        self.calls.append(shop.name)
        self.active[shop.name] = self.active.get(shop.name, 0) + 1
        self.max_per_shop = max(self.max_per_shop, self.active[shop.name])
        self.max_total = max(self.max_total, sum(self.active.values()))
        # Ticks in flight, including any waiting for their turn on the mirror: a tick that fell due
        # during a run must not queue up behind it.
        ticks = [
            t
            for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__name__", "") == "run_coroutine_job"
            and _job_id(t) != daemon.OUTBOX_JOB
        ]
        self.max_ticks = max(self.max_ticks, len(ticks))
        began = time.monotonic()
        try:
            if self.fail_first and len(self.calls) == 1:
                raise ServerError("still 503 after every retry", url="https://shop.test/orders", status=503)
            await asyncio.sleep(self.seconds)
        finally:
            self.active[shop.name] -= 1
            self.spans.append((shop.name, began, time.monotonic()))


def test_runs_of_a_shop_never_overlap_and_missed_ticks_coalesce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = SlowSync(0.7)
    monkeypatch.setattr(daemon, "sync_shop", fake)
    _run_for(_settings(tmp_path, ["a"], interval=0.3), 3.0, fake.calls)
    assert fake.max_per_shop == 1 and fake.max_ticks == 1
    # About ten ticks fell due; each run absorbed those that came while it went on.
    assert 3 <= len(fake.calls) <= 5, fake.spans
    # The ticks missed during a run become one run right after it, not a wait for the next tick
    # (which would leave a gap of 0.2 s here).
    ends = [end for _, _, end in fake.spans[:-1]]
    starts = [start for _, start, _ in fake.spans[1:]]
    assert max(b - a for a, b in zip(ends, starts, strict=True)) < 0.1, fake.spans


def test_shops_run_side_by_side_and_a_failed_run_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = SlowSync(0.3, fail_first=True)
    monkeypatch.setattr(daemon, "sync_shop", fake)
    _run_for(_settings(tmp_path, ["a", "b"], interval=0.5), 2.5, fake.calls)
    assert fake.max_total == 2 and fake.max_per_shop == 1  # a slow shop does not hold the other back
    # The first run failed (whichever shop claimed its firing first); that shop ran again after it.
    failed = fake.calls[0]
    assert fake.calls.count(failed) >= 2
    assert fake.calls.count("a") >= 2 and fake.calls.count("b") >= 2
