"""CPU of a WebCommander scan that finds nothing new, split into start-up, main process and workers.

    uv run python bench/scan_cpu.py                 # 30,000 orders
    uv run python bench/scan_cpu.py --orders 100000

Fills a mirror with one backfill of a realistic sandbox (capped at 50 orders a page, newest first),
then runs the same backfill twice more over the full mirror: every order is listed, hashed in a
worker and skipped. Each run is a fresh process; it reports the CPU spent before the run started
(interpreter and imports), in the main process and in the mapping workers, and per order.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from backfill_bench import ROOT, shop_config, start_sandbox

RUN = """
import asyncio, json, resource, sys, time
from pathlib import Path
from ordersync.config import load_settings
from ordersync.logging import configure_logging
from ordersync.sync.backfill import backfill_shop
configure_logging(level='WARNING')
start = resource.getrusage(resource.RUSAGE_SELF)
settings = load_settings(Path(sys.argv[1]))
t = time.perf_counter()
stats = asyncio.run(backfill_shop(settings.shops[0], settings, settings.mirror.open()))
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({'seconds': time.perf_counter() - t, 'start_cpu': start.ru_utime + start.ru_stime,
                  'main_cpu': me.ru_utime + me.ru_stime, 'worker_cpu': kids.ru_utime + kids.ru_stime,
                  'fetched': stats.fetched, 'loaded': stats.loaded}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=30_000)
    args = parser.parse_args()
    sandbox, url = start_sandbox("webcommander", args.orders, 0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "bench.yaml"
            shop = shop_config("webcommander", url, 250, 4, "none")
            config.write_text(json.dumps({"mirror": {"path": f"{tmp}/bench.duckdb"}, "shops": [shop]}))
            print(
                f"{'run':>10} {'seconds':>8} {'loaded':>8} {'start s':>8} {'main s':>7} "
                f"{'workers s':>9} {'µs/order':>9}"
            )
            for label in ("fill", "unchanged", "unchanged"):
                done = subprocess.run(
                    [sys.executable, "-c", RUN, str(config)],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    check=True,
                )
                r = json.loads(done.stdout.strip().splitlines()[-1])
                per_order = (r["main_cpu"] + r["worker_cpu"]) / r["fetched"] * 1e6
                print(
                    f"{label:>10} {r['seconds']:>8.2f} {r['loaded']:>8,} {r['start_cpu']:>8.2f} "
                    f"{r['main_cpu']:>7.2f} {r['worker_cpu']:>9.2f} {per_order:>9,.0f}",
                    flush=True,
                )
    finally:
        sandbox.terminate()
        sandbox.wait()


if __name__ == "__main__":
    main()
