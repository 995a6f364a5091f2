"""Three daemons on one state store writing one lake, one killed with -9 mid-run: the others take its
shops over, the lake ends with every shop's orders exactly once, and an analyst's read-only connection
held open throughout is never refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import yaml

from ordersync.config import load_settings
from ordersync.mirror.lake import LakeMirror, _broken
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
from ordersync.sandbox.webcommander.app import create_app as create_wc_app
from ordersync.sandbox.webcommander.store import WebCommanderStore
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from ordersync.sandbox.woocommerce.app import create_app as create_woo_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore
from ordersync.state import leases, records
from ordersync.state.store import StateStore
from ordersync.state.tables import metadata

PERIOD = 6.0


def _state_url(tmp_path: Path) -> str:
    url = os.environ.get("ORDERSYNC_TEST_POSTGRES_URL")
    if not url:
        return f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(url)
    with store.engine.begin() as con:
        metadata.drop_all(con)
        con.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    store.dispose()
    return url


def test_a_killed_daemons_shops_are_taken_over_and_the_lake_holds_every_order_once(tmp_path: Path) -> None:
    wcs = [WebCommanderStore(orders=400, seed=10 + n) for n in range(2)]
    woos = [WooCommerceStore(orders=300, seed=20 + n, timezone="Europe/Berlin") for n in range(2)]
    servers = [SandboxServer(create_wc_app(s)) for s in wcs] + [
        SandboxServer(create_woo_app(s)) for s in woos
    ]
    for server in servers:
        server.__enter__()
    common = {"schedule": {"interval": PERIOD}, "concurrency": 2}
    shops = [
        {
            "name": f"wc{n}",
            "platform": "webcommander",
            "base_url": servers[n].base_url,
            "uuid": DEFAULT_UUID,
            "access_token": DEFAULT_TOKEN,
            **common,
        }
        for n in range(2)
    ] + [
        {
            "name": f"woo{n}",
            "platform": "woocommerce",
            "base_url": servers[2 + n].base_url,
            "consumer_key": DEFAULT_CONSUMER_KEY,
            "consumer_secret": DEFAULT_CONSUMER_SECRET,
            "timezone": "Europe/Berlin",
            "currency": "EUR",
            **common,
        }
        for n in range(2)
    ]
    expected = {"wc0": 400, "wc1": 400, "woo0": len(woos[0].order_ids()), "woo1": len(woos[1].order_ids())}
    url = _state_url(tmp_path)
    config = tmp_path / "sync.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "workers": 0,
                "mirror": {"kind": "ducklake", "path": str(tmp_path / "lake.sqlite"), "batch_orders": 100},
                "state": {"url": url},
                "shops": shops,
            }
        )
    )
    store = StateStore(url)
    store.upgrade()
    lake = load_settings(config).mirror.open()
    assert isinstance(lake, LakeMirror)
    lake.ensure_schema()

    stop, failures, counts = threading.Event(), [], []

    def analyst() -> None:
        while not stop.is_set():
            try:
                with lake.connect(read_only=True) as con:
                    while not stop.is_set():
                        counts.append(con.execute("SELECT count(*) FROM orders").fetchone()[0])
                        time.sleep(0.1)
            except duckdb.Error as exc:
                if not _broken(exc):
                    failures.append(exc)
                    return

    reader = threading.Thread(target=analyst)
    reader.start()
    daemons = [
        subprocess.Popen(
            [sys.executable, "-m", "ordersync.cli", "run", "-c", str(config), "--log-json"],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"daemon{n}.log").open("wb"),
        )
        for n in range(3)
    ]
    try:
        # Kill -9 a daemon while it holds a shop's lease (a run in flight), and reap it.
        deadline = time.monotonic() + 60
        held: dict[int, list[str]] = {}
        while not held and time.monotonic() < deadline:
            for name in expected:
                holder = leases.live(store, name)
                if holder is not None and holder.pid in {d.pid for d in daemons}:
                    held.setdefault(holder.pid, []).append(name)
            time.sleep(0.05)
        assert held, "no daemon ever held a shop"
        pid = max(held, key=lambda p: len(held[p]))
        victim = next(d for d in daemons if d.pid == pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed = datetime.now(UTC)

        # Every shop, the victim's included, is synced by a survivor after the kill, within a lease
        # period plus a run.
        deadline = time.monotonic() + leases.LEASE_SECONDS + 60
        while time.monotonic() < deadline:
            later = {
                name: [
                    r
                    for r in records.last_runs(store, name, 20)
                    if r.status == "ok" and r.started_at > killed
                ]
                for name in expected
            }
            if all(later.values()):
                break
            time.sleep(0.5)
        assert all(later.values()), {n: len(r) for n, r in later.items()}
    finally:
        for d in daemons:
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
        for d in daemons:
            d.wait(60)
        stop.set()
        reader.join(10)
        for server in servers:
            server.__exit__(None, None, None)
    assert not failures, failures
    assert len(counts) > 20 and counts == sorted(counts)
    with lake.connect(read_only=True) as con:
        rows = dict(con.execute("SELECT shop, count(*) FROM orders GROUP BY shop").fetchall())
        twice = con.execute(
            "SELECT count(*) - count(DISTINCT (platform, shop, order_id)) FROM orders"
        ).fetchone()[0]
    assert rows == expected and twice == 0
    store.dispose()
