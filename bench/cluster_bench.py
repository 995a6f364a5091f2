"""Many daemons, one PostgreSQL state store, one DuckLake mirror: throughput with 1, 2 and 3 daemons,
and how long shops wait when a daemon is killed with -9 mid-run.

    source .ci/postgres.sh     # a throwaway PostgreSQL (or set ORDERSYNC_BENCH_POSTGRES_URL)
    uv run --with-requirements deploy/ducklake-requirements.txt python bench/cluster_bench.py
    ... python bench/cluster_bench.py --shops 10 --orders 300 --daemons 1 3     # a quicker look

The sandbox shops (half WebCommander, half WooCommerce, ``--orders`` each) run in two child processes,
one per platform; each WooCommerce shop is routed to a WebCommander one and back (``--no-routes``:
none), so every daemon also routes from the state store's feed. For each daemon count, the state store
and the lake (a SQLite catalog) start empty, the daemons start together, and the clock runs until every
shop has finished its first backfill: shops x orders per second. An analyst's read-only connection
queries the lake all along; its slowest query is reported. With 3 daemons the bench also kills one
daemon with -9 while it holds shops' leases, twice (the second time in the next round of runs), and
reports how long each of the victim's shops waited before another daemon finished a run of it: a lease
period (60 s) is the bound; on one host a dead holder's lease is taken at once, so the wait is the rest
of the schedule's claim (90 % of a period) plus a run. At the end the lake must hold every shop's orders
once: none missing, none twice.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from ordersync.config import load_settings
from ordersync.mirror.lake import LakeMirror, _broken
from ordersync.state import leases, records
from ordersync.state.store import StateStore
from ordersync.state.tables import metadata


def _serve(platform: str, shops: int, orders: int, first_seed: int, conn: Any, stop: Any) -> None:
    """A child process serving ``shops`` sandbox shops of one platform until ``stop`` is set."""
    from ordersync.sandbox.server import SandboxServer

    servers, out = [], []
    for n in range(shops):
        seed = first_seed + n
        if platform == "webcommander":
            from ordersync.sandbox.webcommander.app import create_app
            from ordersync.sandbox.webcommander.store import WebCommanderStore

            wc = WebCommanderStore(orders=orders, seed=seed)
            server = SandboxServer(create_app(wc))
            expected = orders
        else:
            from ordersync.sandbox.woocommerce.app import create_app as create_woo
            from ordersync.sandbox.woocommerce.store import WooCommerceStore

            woo = WooCommerceStore(orders=orders, seed=seed, timezone="Europe/Berlin", currency="EUR")
            server = SandboxServer(create_woo(woo))
            expected = len(woo.order_ids())
        server.__enter__()
        servers.append(server)
        out.append((server.base_url, expected))
    conn.send(out)
    stop.wait()
    for server in servers:
        server.__exit__(None, None, None)


def _shop(platform: str, n: int, base_url: str, period: float) -> dict[str, Any]:
    from ordersync.sandbox.webcommander.admin_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
    from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET

    common = {"base_url": base_url, "schedule": {"interval": period}, "concurrency": 2}
    if platform == "webcommander":
        admin = {"base_url": base_url, "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
        return {
            "name": f"wc{n:02d}",
            "platform": "webcommander",
            "uuid": DEFAULT_UUID,
            "access_token": DEFAULT_TOKEN,
            "page_size": 250,
            "admin_api": admin,
            "country_ids": {"DE": 81, "AT": 14, "FR": 74, "IT": 105},
            **common,
        }
    return {
        "name": f"woo{n:02d}",
        "platform": "woocommerce",
        "consumer_key": DEFAULT_CONSUMER_KEY,
        "consumer_secret": DEFAULT_CONSUMER_SECRET,
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        **common,
    }


class Analyst(threading.Thread):
    """A read-only connection to the lake, open for the whole case, counting orders every 0.2 s."""

    def __init__(self, lake: LakeMirror):
        super().__init__(daemon=True)
        self.lake, self.stop = lake, threading.Event()
        self.slowest, self.queries, self.reconnects, self.errors = 0.0, 0, 0, []  # type: ignore[var-annotated]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with self.lake.connect(read_only=True) as con:
                    while not self.stop.is_set():
                        started = time.perf_counter()
                        con.execute("SELECT count(*) FROM orders").fetchone()
                        self.slowest = max(self.slowest, time.perf_counter() - started)
                        self.queries += 1
                        time.sleep(0.2)
            except duckdb.Error as exc:
                if _broken(exc):
                    self.reconnects += 1
                else:
                    self.errors.append(str(exc).splitlines()[0])
                    time.sleep(0.5)


def _daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", "run", "-c", str(config), "--log-json"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def _ok_runs(store: StateStore, shop: str) -> list[records.RunRecord]:
    return [r for r in records.last_runs(store, shop, 50) if r.status == "ok" and r.finished_at]


def _held(store: StateStore, shops: list[str]) -> dict[int, list[str]]:
    """pid -> the shops whose lease it holds now."""
    out: dict[int, list[str]] = {}
    for shop in shops:
        holder = leases.live(store, shop)
        if holder is not None:
            out.setdefault(holder.pid, []).append(shop)
    return out


def _kill_and_time(
    store: StateStore, daemons: list[subprocess.Popen[bytes]], shops: list[str], timeout: float
) -> dict[str, Any]:
    """Kill -9 the daemon holding most leases; seconds until each of its shops has an ok run that
    began after the kill and finished."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {d.pid for d in daemons if d.poll() is None}
        held = {pid: s for pid, s in _held(store, shops).items() if pid in alive}
        if held or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not held:
        return {"victim": None}
    pid, victims = max(held.items(), key=lambda kv: len(kv[1]))
    victim = next(d for d in daemons if d.pid == pid)
    victim.send_signal(signal.SIGKILL)
    killed = datetime.now(UTC)
    # Reaped, as systemd or the kubelet would: an unreaped child is a zombie whose pid still answers,
    # so its leases would wait out their 60 s instead of being taken at once.
    victim.wait(10)
    waits: dict[str, float] = {}
    taken: dict[str, float] = {}
    while len(waits) < len(victims) and time.monotonic() < deadline + 300:
        for shop in victims:
            holder = leases.live(store, shop)
            if shop not in taken and holder is not None and holder.pid != pid:
                taken[shop] = (datetime.now(UTC) - killed).total_seconds()
            if shop in waits:
                continue
            after = [r for r in _ok_runs(store, shop) if r.started_at > killed]
            if after:
                first = min(after, key=lambda r: r.started_at)
                taken.setdefault(shop, (first.started_at - killed).total_seconds())
                waits[shop] = (first.finished_at - killed).total_seconds()  # type: ignore[operator]
        time.sleep(0.2)
    return {
        "victim": pid,
        "shops": len(victims),
        "max_taken": max(taken.values(), default=None),
        "max_wait": max(waits.values(), default=None),
    }


SKUS = {"SKU-001": "495", "SKU-002": "496", "SKU-003": "497", "SKU-004": "498", "TSHIRT-S": "510"}
"""The WooCommerce sandbox's SKUs -> the WebCommander sandbox's product ids."""


def _routes(shops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each WooCommerce shop paired with a WebCommander one, both ways, as a merchant selling through
    both runs them: routing then reads every order's first version from the state store's feed."""
    wcs = [s["name"] for s in shops if s["platform"] == "webcommander"]
    woos = [s["name"] for s in shops if s["platform"] == "woocommerce"]
    routes: list[dict[str, Any]] = []
    for woo, wc in zip(woos, wcs, strict=False):
        routes += [
            {"from": woo, "to": wc, "changes": ["orders", "status", "comments"], "products": SKUS},
            {"from": wc, "to": woo, "changes": ["status", "comments"]},
        ]
    return routes


def run_case(
    daemons: int,
    urls: list[tuple[str, str, int]],
    pg_url: str,
    folder: Path,
    period: float,
    kills: int,
    routes: bool = True,
) -> dict[str, Any]:
    store = StateStore(pg_url)
    with store.engine.begin() as con:  # an empty state store for each case
        metadata.drop_all(con)
        con.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    store.upgrade()
    case = folder / f"case{daemons}"
    case.mkdir()
    shops = [_shop(p, n, url, period) for n, (p, url, _) in enumerate(urls)]
    config = {
        "workers": 0,
        "mirror": {
            "kind": "ducklake",
            "path": str(case / "lake.sqlite"),
            "maintenance": {"cron": "0 3 * * *"},
        },
        "state": {"url": pg_url},
        "shops": shops,
    }
    if routes:
        config["sync"] = {"routes": _routes(shops)}
    path = case / "sync.yaml"
    path.write_text(yaml.safe_dump(config))
    lake = load_settings(path).mirror.open()
    assert isinstance(lake, LakeMirror)
    lake.ensure_schema()
    analyst = Analyst(lake)
    analyst.start()
    names = [s["name"] for s in shops]
    expected = {s["name"]: n for s, (_, _, n) in zip(shops, urls, strict=True)}
    started = time.monotonic()
    procs = [_daemon(path, case / f"daemon{n}.log") for n in range(daemons)]
    result: dict[str, Any] = {"daemons": daemons}
    try:
        takeovers = []
        if kills:
            time.sleep(2)  # into the first round's runs
            takeovers.append(_kill_and_time(store, procs, names, timeout=60))
        while not all(_ok_runs(store, s) for s in names):
            assert any(p.poll() is None for p in procs), "every daemon died"
            time.sleep(0.2)
        result["seconds"] = time.monotonic() - started
        if kills > 1:
            # The next round: wait for a daemon to hold a lease again, then kill it.
            takeovers.append(_kill_and_time(store, procs, names, timeout=period * 2))
        result["takeovers"] = takeovers
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=120)
        analyst.stop.set()
        analyst.join(10)
    with lake.connect(read_only=True) as con:
        held = dict(con.execute("SELECT shop, count(*) FROM orders GROUP BY shop").fetchall())
        twice = con.execute(
            "SELECT count(*) - count(DISTINCT (platform, shop, order_id)) FROM orders"
        ).fetchone()[0]
    missing = {s: expected[s] - held.get(s, 0) for s in names if held.get(s, 0) != expected[s]}
    total = sum(expected.values())
    result.update(
        orders=total,
        orders_per_second=total / result["seconds"],
        missing=missing,
        duplicates=twice,
        analyst_queries=analyst.queries,
        analyst_slowest=analyst.slowest,
        analyst_reconnects=analyst.reconnects,
        analyst_errors=analyst.errors[:3],
    )
    store.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shops", type=int, default=30)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--daemons", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--period", type=float, default=20.0, help="each shop's schedule, seconds")
    parser.add_argument("--keep", type=Path, help="keep each case's config, lake and daemon logs here")
    parser.add_argument(
        "--no-routes",
        action="store_true",
        help="no routes between the pairs of WooCommerce and WebCommander shops",
    )
    args = parser.parse_args()
    pg_url = os.environ.get("ORDERSYNC_BENCH_POSTGRES_URL") or os.environ.get("ORDERSYNC_TEST_POSTGRES_URL")
    if not pg_url:
        sys.exit("no PostgreSQL: `source .ci/postgres.sh` first, or set ORDERSYNC_BENCH_POSTGRES_URL")
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    children, urls = [], []
    half = args.shops // 2
    for platform, count, seed in (("webcommander", args.shops - half, 100), ("woocommerce", half, 200)):
        mine, theirs = ctx.Pipe()
        child = ctx.Process(target=_serve, args=(platform, count, args.orders, seed, theirs, stop))
        child.start()
        children.append(child)
        urls.extend((platform, url, n) for url, n in mine.recv())
    print(
        f"{args.shops} shops x {args.orders} orders ({sum(n for *_, n in urls):,} listed), PostgreSQL state, "
        f"SQLite-catalog DuckLake, {'no routes' if args.no_routes else 'routes between pairs'}, "
        f"{os.cpu_count()} cores"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.keep:
                args.keep.mkdir(parents=True)
                tmp = str(args.keep)
            for n in args.daemons:
                kills = 2 if n == 3 else 0
                r = run_case(n, urls, pg_url, Path(tmp), args.period, kills, routes=not args.no_routes)
                print(
                    f"{n} daemon(s): {r['orders']:,} orders in {r['seconds']:.1f} s = "
                    f"{r['orders_per_second']:,.0f} orders/s; missing {r['missing'] or 'none'}, "
                    f"twice {r['duplicates']}; analyst: "
                    f"{r['analyst_queries']} queries, slowest {r['analyst_slowest'] * 1000:.0f} ms, "
                    f"{r['analyst_reconnects']} reconnects, errors {r['analyst_errors'] or 'none'}"
                )
                for k, t in enumerate(r.get("takeovers", []), 1):
                    if t.get("victim") is None:
                        print(f"  kill {k}: no daemon held a lease to kill")
                        continue
                    print(
                        f"  kill -9 {k}: pid {t['victim']} held {t['shops']} shop(s); another daemon took "
                        f"the last of them {t['max_taken']:.1f} s after the kill and finished its run at "
                        f"{t['max_wait']:.1f} s"
                        if t["max_wait"] is not None
                        else f"  kill -9 {k}: pid {t['victim']}: its shops were not synced again in time"
                    )
    finally:
        stop.set()
        for child in children:
            child.join(30)


if __name__ == "__main__":
    main()
