"""A shop down for two minutes in the middle of `ordersync backfill`, with the default HTTP policy.

    uv run python bench/outage_drill.py                          # WooCommerce, 60 s refused + 60 s 502
    uv run python bench/outage_drill.py --platform webcommander --refused 90 --bad-gateway 30

Once the backfill has committed its first batch (its checkpoint in the state store moved), the
sandbox process is killed: the port refuses connections for ``--refused`` seconds, as while a server
restarts. It then comes back with the same seed and answers nginx's 502 page to every request for
``--bad-gateway`` seconds, as while php-fpm is down. The drill passes when the backfill exits 0 by
itself and its mirror holds exactly the orders of a second, undisturbed backfill of the same shop.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from backfill_bench import ROOT, free_port, shop_config, start_sandbox


def sandbox(platform: str, port: int, orders: int, bad_gateway: float) -> subprocess.Popen[str]:
    outage = ("--outage-after", "0", "--outage-for", str(bad_gateway)) if bad_gateway else ()
    return start_sandbox(platform, orders, 0.0, port=port, extra=outage)[0]


def checkpointed(state: Path) -> bool:
    if not state.exists():
        return False
    try:
        with sqlite3.connect(state) as con:
            rows = con.execute("SELECT value FROM cursors WHERE stream = 'backfill'").fetchall()
    except sqlite3.Error:
        return False
    return any(json.loads(value).get("position") for (value,) in rows)


def backfill(shop: dict[str, object], workdir: Path) -> subprocess.Popen[str]:
    config = workdir / "sync.yaml"
    config.write_text(
        json.dumps(
            {
                "mirror": {"path": str(workdir / "mirror.duckdb")},
                "state": {"url": f"sqlite:///{workdir / 'state.db'}", "auto_upgrade": True},
                "shops": [shop],
            }
        )
    )
    return subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", "backfill", "--config", str(config), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


def order_ids(workdir: Path) -> set[str]:
    with duckdb.connect(str(workdir / "mirror.duckdb"), read_only=True) as con:
        return {row[0] for row in con.execute("SELECT order_id FROM orders").fetchall()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--platform", choices=["webcommander", "woocommerce"], default="woocommerce")
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--refused", type=float, default=60.0, help="seconds the port refuses connections")
    parser.add_argument("--bad-gateway", type=float, default=60.0, help="seconds of 502 pages after that")
    args = parser.parse_args()
    port = free_port()
    shop = shop_config(args.platform, f"http://127.0.0.1:{port}", 100, 4, "all")
    with tempfile.TemporaryDirectory() as disturbed, tempfile.TemporaryDirectory() as calm:
        proc = sandbox(args.platform, port, args.orders, 0)
        started = time.monotonic()
        run = backfill(shop, Path(disturbed))
        while not checkpointed(Path(disturbed) / "state.db"):
            if run.poll() is not None:
                raise SystemExit("the backfill ended before its first checkpoint: use more --orders")
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        down_at = time.monotonic()
        print(f"shop killed {down_at - started:.1f} s into the backfill, after its first checkpoint")
        time.sleep(args.refused)
        proc = sandbox(args.platform, port, args.orders, args.bad_gateway)
        print(
            f"shop back after {time.monotonic() - down_at:.0f} s, answering 502 for {args.bad_gateway:.0f} s"
        )
        try:
            output, _ = run.communicate(timeout=args.refused + args.bad_gateway + 900)
            ended = time.monotonic()
            reference = backfill(shop, Path(calm))
            reference.communicate(timeout=900)
        finally:
            proc.terminate()
            proc.wait()
        got, want = order_ids(Path(disturbed)), order_ids(Path(calm))
        summary = [line for line in output.splitlines() if "retries" in line or "INCOMPLETE" in line]
        print("\n".join(summary[-3:]))
        print(
            f"exit {run.returncode}; {ended - started:.1f} s in all, {ended - down_at:.1f} s after the shop "
            f"went down; mirror {len(got):,} orders, undisturbed backfill {len(want):,}; "
            f"missing {len(want - got)}, extra {len(got - want)}"
        )
        if run.returncode or got != want:
            raise SystemExit("FAILED: the backfill did not ride out the outage")
        print("PASSED")


if __name__ == "__main__":
    main()
