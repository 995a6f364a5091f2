"""How long a WooCommerce status change takes to reach WebCommander: with webhooks, and by polling.

    uv run python bench/webhook_bench.py                 # 200 changes at 0 and 50 ms, each way
    uv run python bench/webhook_bench.py --changes 50 --latency 0 --no-polling

Both sandboxes run in this process (their servers in threads); `ordersync run` runs as a daemon in
its own process, with a route WooCommerce -> WebCommander (orders and status). First the bench
creates ``--orders`` new WooCommerce orders and waits until the route has replicated each into
WebCommander. Then it changes a replicated order's status in WooCommerce, ``--in-flight`` changes at
a time on different orders, and times each from the change until the linked WebCommander order shows
the new status: the delivery, the receiver, the targeted read, mapping, the mirror, routing and the
outbox's write to WebCommander. With webhooks the shop's poll is an hour away, so only deliveries
count; "polling" turns webhooks off and polls every ``--poll`` seconds, its changes starting at
random moments, so its latency is about half that interval plus a run. Reports p50 / p95 / max
seconds per case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ordersync.sandbox.faults import FaultConfig
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
from ordersync.sandbox.webcommander.app import create_app as create_wc_app
from ordersync.sandbox.webcommander.store import WebCommanderStore
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from ordersync.sandbox.woocommerce.app import create_app as create_woo_app
from ordersync.sandbox.woocommerce.catalog import PRODUCTS
from ordersync.sandbox.woocommerce.store import WooCommerceStore
from ordersync.state import links
from ordersync.state.store import StateStore

SECRET = "bench-webhook-secret"
SKU_MAP = {"SKU-001": "495", "SKU-002": "496", "SKU-003": "497", "SKU-004": "498"}
STATUSES = ("completed", "processing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _new_order(woo: WooCommerceStore, n: int) -> int:
    product = next(p for p in PRODUCTS if p.sku == f"SKU-00{1 + n % 4}")
    order = woo.create_order(
        {
            "billing": {
                "first_name": "Bench",
                "last_name": str(n),
                "country": "AU",
                "email": f"b{n}@example.com",
            },
            "payment_method": "bacs",
            "line_items": [{"product_id": product.id, "quantity": 1}],
            "set_paid": True,
        }
    )
    return order.id


def run_case(
    *, changes: int, latency: float, webhooks: bool, poll: float, orders: int, in_flight: int
) -> dict[str, Any]:
    faults = FaultConfig(latency_ms=latency)
    woo = WooCommerceStore(orders=20, seed=11, timezone="Australia/Melbourne", currency="AUD")
    wc = WebCommanderStore(orders=20, seed=11, timezone="Australia/Melbourne")
    woo_app = create_woo_app(woo, faults=faults)
    sender = woo_app.app.app.state.webhooks
    port = _free_port()
    with (
        tempfile.TemporaryDirectory() as tmp,
        SandboxServer(woo_app) as woo_server,
        SandboxServer(create_wc_app(wc, faults=faults)) as wc_server,
    ):
        folder = Path(tmp)
        state_url = f"sqlite:///{folder / 'state.db'}"
        woo_shop: dict[str, Any] = {
            "name": "woo",
            "platform": "woocommerce",
            "base_url": woo_server.base_url,
            "consumer_key": DEFAULT_CONSUMER_KEY,
            "consumer_secret": DEFAULT_CONSUMER_SECRET,
            "timezone": "Australia/Melbourne",
            "currency": "AUD",
            "notes": "none",
            "schedule": {"interval": 3600 if webhooks else poll},
        }
        if webhooks:
            woo_shop["webhook_secret"] = SECRET
        config = {
            "workers": 0,
            "mirror": {"path": str(folder / "m.duckdb"), "lock_wait": 60},
            "state": {"url": state_url, "auto_upgrade": True},
            "ops": {"listen": f"127.0.0.1:{port}"},
            "sync": {
                "routes": [{"from": "woo", "to": "wc", "changes": ["orders", "status"], "products": SKU_MAP}],
                "outbox": {"interval": 1},
            },
            "shops": [
                woo_shop,
                {
                    "name": "wc",
                    "platform": "webcommander",
                    "base_url": wc_server.base_url,
                    "uuid": DEFAULT_UUID,
                    "access_token": DEFAULT_TOKEN,
                    "timezone": "Australia/Melbourne",
                    "currency": "AUD",
                    "country_ids": {"AU": 12},
                    "schedule": {"interval": 3600},
                },
            ],
        }
        (folder / "sync.yaml").write_text(yaml.safe_dump(config))
        log = folder / "daemon.log"
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ordersync.cli",
                "--log-level",
                "WARNING",
                "run",
                "-c",
                str(folder / "sync.yaml"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        store = StateStore(state_url)
        try:
            _wait(lambda: (folder / "m.duckdb").exists() and _ran(store), 120, daemon, log, "the first runs")
            if webhooks:
                url = f"http://127.0.0.1:{port}/webhooks/woocommerce/woo"
                for topic in ("order.created", "order.updated"):
                    sender.create(
                        {"name": f"ordersync {topic}", "topic": topic, "delivery_url": url, "secret": SECRET}
                    )
            ids = [_new_order(woo, n) for n in range(orders)]
            linked: dict[int, str] = {}

            def replicated() -> bool:
                for woo_id in ids:
                    if woo_id not in linked:
                        with store.engine.connect() as con:
                            target = links.counterpart(con, "woo", str(woo_id), "wc")
                        if target is not None:
                            linked[woo_id] = target
                return len(linked) == len(ids)

            _wait(replicated, 180, daemon, log, "the replication of the new orders")
            _wait(
                lambda: all(wc.get(linked[i])["orderStatus"] == "processing" for i in ids),
                120,
                daemon,
                log,
                "the copies' first status",
            )
            jitter = 0.0 if webhooks else poll
            latencies = asyncio.run(_changes(woo, wc, ids, linked, changes, in_flight, daemon, log, jitter))
        finally:
            daemon.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=60)
            store.dispose()
            sender.close()
    latencies.sort()
    return {
        "case": "webhooks" if webhooks else f"polling every {poll:g} s",
        "latency_ms": latency,
        "changes": len(latencies),
        "p50": statistics.median(latencies),
        "p95": latencies[max(0, round(0.95 * len(latencies)) - 1)],
        "max": latencies[-1],
    }


def _ran(store: StateStore) -> bool:
    from ordersync.state import records

    try:
        return bool(records.last_runs(store, "woo", 1, status="ok")) and bool(
            records.last_runs(store, "wc", 1, status="ok")
        )
    except Exception:  # the daemon is still creating the store
        return False


def _wait(check: Any, seconds: float, daemon: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"waiting for {what} failed; daemon log:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)


async def _changes(
    woo: WooCommerceStore,
    wc: WebCommanderStore,
    ids: list[int],
    linked: dict[int, str],
    changes: int,
    in_flight: int,
    daemon: subprocess.Popen[bytes],
    log: Path,
    jitter: float = 0.0,
) -> list[float]:
    """``changes`` status changes, ``in_flight`` at a time on different orders, each timed until the
    WebCommander copy shows it."""
    latencies: list[float] = []
    rng = random.Random(7)
    free = list(ids)
    done = 0
    lock = asyncio.Lock()

    async def one(n: int) -> None:
        # A change at a random moment, not in step with the last one's arrival (which, by polling,
        # comes just after a run and would make every change wait a whole interval).
        await asyncio.sleep(rng.uniform(0, jitter))
        async with lock:
            woo_id = free.pop(0)
        order = woo.get(woo_id)
        status = STATUSES[0] if order.status != STATUSES[0] else STATUSES[1]
        started = time.monotonic()
        woo.set_status(order, status)
        while wc.get(linked[woo_id])["orderStatus"] != status:
            if daemon.poll() is not None or time.monotonic() - started > 120:
                raise SystemExit(f"change {n} never arrived; daemon log:\n{log.read_text()[-4000:]}")
            await asyncio.sleep(0.02)
        latencies.append(time.monotonic() - started)
        async with lock:
            free.append(woo_id)

    pending: set[asyncio.Task[None]] = set()
    while done < changes or pending:
        while done < changes and len(pending) < in_flight:
            pending.add(asyncio.create_task(one(done)))
            done += 1
        finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            task.result()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--latency", type=float, action="append", help="ms per request; default 0 and 50")
    parser.add_argument("--orders", type=int, default=12, help="replicated orders the changes go round")
    parser.add_argument("--in-flight", type=int, default=4, help="changes under way at once")
    parser.add_argument("--poll", type=float, default=10.0, help="the polling case's interval, seconds")
    parser.add_argument("--polling-changes", type=int, default=200)
    parser.add_argument("--no-polling", action="store_true")
    parser.add_argument("--no-webhooks", action="store_true")
    args = parser.parse_args()
    latencies = args.latency or [0.0, 50.0]
    cases = ([] if args.no_webhooks else [(True, ms, args.changes) for ms in latencies]) + (
        [] if args.no_polling else [(False, ms, args.polling_changes) for ms in latencies]
    )
    rows = [
        run_case(
            changes=changes,
            latency=ms,
            webhooks=hooks,
            poll=args.poll,
            orders=args.orders,
            # By polling, twice as many under way at once: each waits about half an interval.
            in_flight=args.in_flight if hooks else args.in_flight * 2,
        )
        for hooks, ms, changes in cases
    ]
    print(f"{'case':<22} {'latency':>8} {'changes':>8} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    for r in rows:
        figures = f"{r['p50']:>7.2f} {r['p95']:>7.2f} {r['max']:>7.2f}"
        print(f"{r['case']:<22} {r['latency_ms']:>6g}ms {r['changes']:>8} {figures}")


if __name__ == "__main__":
    main()
