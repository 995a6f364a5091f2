"""Write-back throughput: replicate new WooCommerce orders into WebCommander, then route status changes
back, through the outbox, against both sandboxes running in their own processes.

    uv run python bench/writeback_bench.py                  # 200 new orders on shops of 2,000
    uv run python bench/writeback_bench.py --new 500 --existing 10000
    uv run python bench/writeback_bench.py --new 100 --existing 500 --latency 50 --concurrency 1

Reported per phase: seconds of the syncs, seconds of routing plus draining, operations applied,
requests sent to each shop (reads and writes), and operations per second. Phase 1 replicates
``--new`` orders (each: one create, then its status and its payment as follow-ups). Phase 2 marks
every copy completed in WebCommander, which routes one status change per order to WooCommerce, where
the outbox groups them into ``orders/batch`` requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backfill_bench import WOO_KEY, WOO_SECRET, start_sandbox
from ordersync import http as http_module
from ordersync.config import parse_settings
from ordersync.logging import configure_logging
from ordersync.platforms.woocommerce.auth import build_auth
from ordersync.sandbox.webcommander.admin_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from ordersync.state import links
from ordersync.sync.incremental import sync_shop
from ordersync.writeback.service import write_back

REQUESTS: Counter[str] = Counter()
_original_once = http_module.HttpPolicy._once


async def _counting_once(self: Any, client: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
    REQUESTS[f"{self.shop} {method}"] += 1
    return await _original_once(self, client, method, url, *args, **kwargs)


http_module.HttpPolicy._once = _counting_once  # type: ignore[method-assign]

WC_HEADERS = {"uuid": "F8A3-A88E-C6EF-B1CB", "accessToken": "11b4ec017714ef095b8e115545467fcb"}


def config(workdir: Path, woo_url: str, wc_url: str, concurrency: int) -> dict[str, Any]:
    return {
        "workers": 2,
        "mirror": {"path": str(workdir / "bench.duckdb")},
        "state": {"url": f"sqlite:///{workdir / 'state.db'}", "auto_upgrade": True},
        "sync": {
            "routes": [
                {
                    "from": "woo",
                    "to": "wc",
                    "changes": ["orders", "status", "payments", "comments"],
                    "products": {"SKU-001": "495", "SKU-003": "497"},
                },
                {"from": "wc", "to": "woo", "changes": ["status", "comments"]},
            ],
            "outbox": {"backoff_base": 0, "batch": 500, "concurrency": concurrency},
        },
        "shops": [
            {
                "name": "woo",
                "platform": "woocommerce",
                "base_url": woo_url,
                "consumer_key": WOO_KEY,
                "consumer_secret": WOO_SECRET,
                "timezone": "Europe/Berlin",
                "currency": "EUR",
                "notes_refresh": "none",
            },
            {
                "name": "wc",
                "platform": "webcommander",
                "base_url": wc_url,
                "uuid": WC_HEADERS["uuid"],
                "access_token": WC_HEADERS["accessToken"],
                "timezone": "Europe/Berlin",
                "currency": "EUR",
                "page_size": 250,
                "admin_api": {
                    "base_url": wc_url,
                    "client_id": DEFAULT_CLIENT_ID,
                    "client_secret": DEFAULT_CLIENT_SECRET,
                },
                "country_ids": {"DE": 81, "AT": 14, "FR": 74, "IT": 105},
            },
        ],
    }


async def create_woo_orders(woo_url: str, count: int) -> None:
    auth = build_auth("oauth1", WOO_KEY, WOO_SECRET, signature_method="HMAC-SHA256", legacy=False)
    body = {
        "billing": {"city": "Berlin", "postcode": "10115", "country": "DE", "email": "b@x.de"},
        "payment_method": "stripe",
        "line_items": [{"product_id": 11, "quantity": 1}, {"product_id": 13, "quantity": 3}],
        "set_paid": True,
    }
    limiter = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=woo_url, auth=auth, timeout=30) as client:

        async def one() -> None:
            async with limiter:
                (await client.post("/wp-json/wc/v3/orders", json=body)).raise_for_status()

        await asyncio.gather(*(one() for _ in range(count)))


async def complete_wc_orders(wc_url: str, ids: list[str]) -> None:
    limiter = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=wc_url, headers=WC_HEADERS, timeout=30) as client:

        async def one(order_id: str) -> None:
            async with limiter:
                response = await client.post(
                    "/external/app/access/change-order-Status", json={"id": order_id, "status": "completed"}
                )
                response.raise_for_status()

        await asyncio.gather(*(one(i) for i in ids))


def phase(settings: Any, store: Any, label: str) -> dict[str, Any]:
    mirror = settings.mirror.open()
    REQUESTS.clear()
    started = time.perf_counter()
    for name in ("woo", "wc"):
        asyncio.run(sync_shop(settings.shop(name), settings, mirror, store))
    synced = time.perf_counter()
    sync_requests = dict(REQUESTS)
    REQUESTS.clear()
    stats = asyncio.run(write_back(settings, store, mirror, list(settings.shops)))
    done = time.perf_counter()
    applied = stats.drained.done + stats.drained.found + stats.drained.already
    return {
        "phase": label,
        "sync_s": round(synced - started, 2),
        "writeback_s": round(done - synced, 2),
        "queued": sum(r.queued for r in stats.routed.values()),
        "applied": applied,
        "dead": stats.drained.dead,
        "ops_per_s": round(applied / (done - synced), 1) if applied else 0,
        "writeback_requests": dict(sorted(REQUESTS.items())),
        "sync_requests": sync_requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new", type=int, default=200, help="new WooCommerce orders to replicate")
    parser.add_argument("--existing", type=int, default=2000, help="orders each sandbox starts with")
    parser.add_argument("--latency", type=float, default=0, help="milliseconds the sandboxes add per request")
    parser.add_argument("--concurrency", type=int, default=4, help="sync.outbox.concurrency")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    woo_proc, woo_url = start_sandbox("woocommerce", args.existing, args.latency)
    wc_proc, wc_url = start_sandbox("webcommander", args.existing, args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = parse_settings(config(Path(tmp), woo_url, wc_url, args.concurrency))
            store = settings.state.open_ready()
            first = phase(settings, store, "backfill both shops, routes start")
            time.sleep(1)  # orders created in the routes' first second would count as old
            asyncio.run(create_woo_orders(woo_url, args.new))
            replicate = phase(settings, store, f"replicate {args.new} new orders")
            with store.engine.connect() as connection:
                copies = list(links.linked_orders(connection, "wc"))
            asyncio.run(complete_wc_orders(wc_url, copies))
            statuses = phase(settings, store, f"{len(copies)} status changes back")
            quiet = phase(settings, store, "nothing changed (no echo)")
            for row in (first, replicate, statuses, quiet):
                print(json.dumps(row))
            store.dispose()
    finally:
        for proc in (woo_proc, wc_proc):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
