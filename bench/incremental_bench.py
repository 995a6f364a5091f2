"""Incremental sync on a large shop with a few changed orders: seconds, requests, orders re-mapped.

    uv run python bench/incremental_bench.py                       # both platforms, 100,000 orders
    uv run python bench/incremental_bench.py --platform woocommerce --orders 20000

Each platform's sandbox runs in its own process. The mirror is first filled by a backfill (with the
state store, so the incremental cursor starts where a user's would), then ``--changed`` orders are
changed through the shop's own write API (status changes and a comment), and ``sync_shop`` runs in a
fresh process. Reported per run: wall seconds of the sync, requests sent, orders listed, re-mapped and
written. WooCommerce is measured with ``notes: none`` (the target: under 2 s and 10 requests) and with
notes of open orders re-read (``notes: all``, ``notes_refresh: open``), whose cost is the point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backfill_bench import ROOT, shop_config, start_sandbox
from ordersync.platforms.woocommerce.auth import build_auth

WOO_KEY = "ck_sandbox_read_write_0000000000000000000000"
WOO_SECRET = "cs_sandbox_read_write_0000000000000000000000"

RUN = """
import asyncio, json, resource, sys, time
from pathlib import Path
from ordersync.config import load_settings
from ordersync.logging import configure_logging
from ordersync.sync.backfill import backfill_shop
from ordersync.sync.incremental import sync_shop
configure_logging(level='WARNING')
settings = load_settings(Path(sys.argv[1]))
store = settings.state.open_ready()
mirror = settings.mirror.open()
shop = settings.shops[0]
t = time.perf_counter()
if sys.argv[2] == 'backfill':
    stats = asyncio.run(backfill_shop(shop, settings, mirror, store=store))
else:
    stats = asyncio.run(sync_shop(shop, settings, mirror, store))
seconds = time.perf_counter() - t
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
print(json.dumps({'kind': stats.kind, 'seconds': seconds, 'fetched': stats.fetched, 'mapped': stats.mapped,
                  'cpu_s': cpu,
                  'loaded': stats.loaded, 'requests': stats.details.get('requests'),
                  'listed': stats.details.get('listed'), 'notes_checked': stats.details.get('notes_checked'),
                  'notes_seconds': stats.details.get('notes_seconds')}))
"""


def run(config: Path, what: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(config), what], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_config(workdir: Path, shop: dict[str, object], name: str) -> Path:
    config = workdir / f"{name}.yaml"
    config.write_text(
        json.dumps(
            {
                "mirror": {"path": str(workdir / "bench.duckdb")},
                "state": {"url": f"sqlite:///{workdir / 'state.db'}", "auto_upgrade": True},
                "shops": [shop],
            }
        )
    )
    return config


async def change_woocommerce(base_url: str, count: int, offset: int) -> None:
    """Status changes through REST v3, signed as any client would."""
    auth = build_auth("oauth1", WOO_KEY, WOO_SECRET, signature_method="HMAC-SHA256", legacy=False)
    async with httpx.AsyncClient(base_url=base_url, auth=auth, timeout=30) as client:
        listed = await client.get("/wp-json/wc/v3/orders", params={"per_page": count, "status": "processing"})
        listed.raise_for_status()
        for order in listed.json():
            changed = await client.put(f"/wp-json/wc/v3/orders/{order['id']}", json={"status": "completed"})
            changed.raise_for_status()


async def change_webcommander(base_url: str, count: int, offset: int) -> None:
    headers = {"uuid": "F8A3-A88E-C6EF-B1CB", "accessToken": "11b4ec017714ef095b8e115545467fcb"}
    prefix = "/external/app/access"
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        listed = await client.get(f"{prefix}/orders", params={"max": count, "offset": offset})
        listed.raise_for_status()
        for n, order in enumerate(listed.json()["orders"]):
            if n % 2:
                await client.post(
                    f"{prefix}/order-comment-add", json={"orderId": order["id"], "message": "bench"}
                )
            else:
                status = "completed" if order["orderStatus"] != "completed" else "pending"
                await client.post(f"{prefix}/change-order-Status", json={"id": order["id"], "status": status})


def _per_order(result: dict[str, object]) -> str:
    """CPU of the whole sync process (interpreter start and mapping workers included) per order read."""
    fetched = int(result["fetched"])  # type: ignore[call-overload]
    return f"{float(result['cpu_s']) / fetched * 1e6:,.0f}" if fetched else "-"  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--platform", action="append", choices=["webcommander", "woocommerce"])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; {args.orders:,} orders, {args.changed} changed, 0 ms latency")
    header = (
        f"{'platform':>12} {'run':>22} {'seconds':>8} {'requests':>9} {'fetched':>8} {'mapped':>7} "
        f"{'written':>8} {'CPU s':>6} {'CPU µs/order':>12}"
    )
    for platform in args.platform or ["woocommerce", "webcommander"]:
        sandbox, url = start_sandbox(platform, args.orders, 0.0)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp)
                shop = shop_config(platform, url, 250, 4, "none")
                config = write_config(workdir, shop, "notes-none")
                filled = run(config, "backfill")
                print(
                    f"{platform}: backfill of {filled['fetched']:,} orders in {filled['seconds']:.1f}s",
                    flush=True,
                )
                print(header)
                runs: list[tuple[str, Path]] = [("unchanged", config), ("changed", config)]
                if platform == "woocommerce":
                    notes = write_config(workdir, {**shop, "notes": "all"}, "notes-all")
                    # The first reads the notes the notes-less backfill left out; the second is the
                    # steady state: every open order's notes read, nothing new.
                    runs += [("notes: first run", notes), ("notes: steady state", notes)]
                for label, cfg in runs:
                    if label == "changed":
                        change = change_woocommerce if platform == "woocommerce" else change_webcommander
                        asyncio.run(change(url, args.changed, args.orders // 2))
                    result = run(cfg, "sync")
                    print(
                        f"{platform:>12} {label:>22} {result['seconds']:>8.2f} {result['requests']:>9,} "
                        f"{result['fetched']:>8,} {result['mapped']:>7,} {result['loaded']:>8,}"
                        f" {result['cpu_s']:>6.1f} {_per_order(result):>12}"
                        + (
                            f"  notes checked {result['notes_checked']:,} in {result['notes_seconds']}s"
                            if result.get("notes_checked")
                            else ""
                        ),
                        flush=True,
                    )
        finally:
            sandbox.terminate()
            sandbox.wait()


if __name__ == "__main__":
    main()
