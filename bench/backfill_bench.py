"""Backfill throughput and peak memory against sandbox shops on loopback.

    uv run python bench/backfill_bench.py        # both platforms, N = 10,000 and 100,000, 0 and 50 ms
    uv run python bench/backfill_bench.py --platform woocommerce --orders 10000 --latency 0 --notes none
    uv run python bench/backfill_bench.py --platform webcommander --orders 10000 --max-cap 0  # no cap

The WebCommander sandbox caps ``max`` at 50 (``--max-cap``, as real hosts do) and lists newest first,
so a ``page_size`` of 250 is answered 50 orders a page; the columns say how many requests that took and
how soon the first batch was committed.

The sandbox runs in its own process with pre-rendered order JSON (each order encoded once, pages are
joins of cached bytes), so what is measured is ordersync: fetch, parse, map, validate, load into
DuckDB. Each backfill runs in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


WOO_KEY = "ck_sandbox_read_write_0000000000000000000000"
WOO_SECRET = "cs_sandbox_read_write_0000000000000000000000"


def start_sandbox(
    platform: str,
    orders: int,
    latency_ms: float,
    max_cap: int = 50,
    *,
    port: int | None = None,
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[str], str]:
    port = port or free_port()
    port_flag = "--port" if platform == "webcommander" else "--woo-port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ordersync.cli",
            "sandbox",
            "--only",
            platform,
            port_flag,
            str(port),
            "--orders",
            str(orders),
            "--realistic",
            "--latency-ms",
            str(latency_ms),
            "--max-cap",
            str(max_cap),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "ready":
            return proc, f"http://127.0.0.1:{port}"
    raise RuntimeError("sandbox did not start")


def shop_config(
    platform: str, base_url: str, page_size: int, concurrency: int, notes: str
) -> dict[str, object]:
    if platform == "webcommander":
        return {
            "name": "bench",
            "platform": "webcommander",
            "base_url": base_url,
            "uuid": "F8A3-A88E-C6EF-B1CB",
            "access_token": "11b4ec017714ef095b8e115545467fcb",
            "timezone": "Australia/Melbourne",
            "currency": "AUD",
            "page_size": page_size,
            "concurrency": concurrency,
        }
    return {
        "name": "bench",
        "platform": "woocommerce",
        "base_url": base_url,
        "consumer_key": WOO_KEY,
        "consumer_secret": WOO_SECRET,
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "page_size": min(page_size, 100),
        "concurrency": concurrency,
        "notes": notes,
    }


def run_backfill(
    shop: dict[str, object],
    workdir: Path,
    mirror: dict[str, object] | None = None,
    workers: int | None = None,
    state: bool = False,
) -> dict[str, float]:
    """One backfill in a fresh process. ``state``: with a SQLite state store, as ``ordersync backfill``
    runs (checkpoints, quarantine and the order versions each batch records)."""
    config = workdir / "bench.yaml"
    settings: dict[str, object] = {
        "mirror": {"path": str(workdir / "bench.duckdb"), **(mirror or {})},
        "shops": [shop],
    }
    if state:
        settings["state"] = {"url": f"sqlite:///{workdir / 'state.db'}", "auto_upgrade": True}
    if workers is not None:
        settings["workers"] = workers
    config.write_text(json.dumps(settings))
    code = (
        "import asyncio, json, resource, sys, time\n"
        "from pathlib import Path\n"
        "from ordersync.config import load_settings\n"
        "from ordersync.logging import configure_logging\n"
        "from ordersync.sync.backfill import backfill_shop\n"
        "configure_logging(level='WARNING')\n"
        f"settings = load_settings(Path({str(config)!r}))\n"
        "from ordersync.mirror.store import Mirror\n"
        "mirror = settings.mirror.open()\n"
        "first = {}\n"
        "write = Mirror.write\n"
        "def timed(self, *a, **k):\n"
        "    done = write(self, *a, **k)\n"
        "    first.setdefault('batch', time.perf_counter())\n"
        "    return done\n"
        "Mirror.write = timed\n"
        "def progress(n, total):\n"
        "    first.setdefault('page', time.perf_counter())\n"
        f"store = settings.state.open_ready() if {state!r} else None\n"
        "t = time.perf_counter()\n"
        "shop = settings.shops[0]\n"
        "stats = asyncio.run(backfill_shop(shop, settings, mirror, progress=progress, store=store))\n"
        "seconds = time.perf_counter() - t\n"
        "me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "rss, worker = me.ru_maxrss / 1024, kids.ru_maxrss / 1024\n"
        "cpu = (me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime)\n"
        "print(json.dumps({'orders': stats.fetched, 'loaded': stats.loaded, 'seconds': seconds,"
        " 'orders_per_s': stats.fetched / seconds, 'peak_rss_mb': rss, 'worker_rss_mb': worker,"
        " 'cpu_main_s': cpu[0], 'cpu_workers_s': cpu[1],"
        " 'pages': stats.pages, 'workers': settings.workers, 'requests': stats.details.get('requests'),"
        " 'first_page_s': first['page'] - t, 'first_batch_s': first['batch'] - t,"
        " 'gate': stats.details.get('detail_concurrency')}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_peer(platform: str, base_url: str, workdir: Path) -> dict[str, float]:
    """The minimal peer pipeline (bench/peers/minimal.py) on the same sandbox, in a fresh process."""
    peer = Path(__file__).parent / "peers" / "minimal.py"
    args = [sys.executable, str(peer), "--platform", platform, "--base-url", base_url]
    done = subprocess.run(
        [*args, "--db", str(workdir / "peer.duckdb")], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_cell(result: dict[str, float]) -> str:
    """CPU of the backfill process and its mapping workers per order (user + system): steadier than
    wall time on a shared machine, and what "work per order" means."""
    per_order = (result["cpu_main_s"] + result["cpu_workers_s"]) / result["orders"] * 1e6
    return f" {result['cpu_main_s']:.0f}+{result['cpu_workers_s']:.0f}s {per_order:>6,.0f}"


def _gate_cells(result: dict[str, float], shop: dict[str, object], latency: float) -> str:
    gate = result.get("gate")
    bound = detail_bound(result, shop, latency)
    shown = f"{gate['peak']}/{gate['final']}" if gate else "-"
    return f" {shown:>15} {f'{bound:,.0f}' if bound else '-':>8}"


def _peer_cells(result: dict[str, float], peer: dict[str, float] | None) -> str:
    if not peer:
        return f"{'-':>7} {'-':>6} {'-':>8}"
    ratio = result["orders_per_s"] / peer["orders_per_s"]
    return f"{peer['orders_per_s']:>7,.0f} {ratio:>5.2f}x {peer['peak_rss_mb']:>8.0f}"


def detail_bound(result: dict[str, float], shop: dict[str, object], latency_ms: float) -> float | None:
    """The most orders a second the run's requests allow at this latency, were the client free: list
    pages ``concurrency`` at a time and detail requests ``detail_concurrency`` (the gate's ceiling) at
    a time, each taking one latency. None at 0 ms, where the client's CPU is the only bound."""
    if not latency_ms or not result.get("gate"):
        return None
    pages = result["pages"]
    details = result["requests"] - pages
    seconds = latency_ms / 1000 * (pages / int(shop["concurrency"]) + details / result["gate"]["ceiling"])
    return result["orders"] / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, action="append", help="repeatable; default 10000 and 100000")
    parser.add_argument("--latency", type=float, action="append", help="ms per request; default 0 and 50")
    parser.add_argument("--platform", action="append", choices=["webcommander", "woocommerce"])
    parser.add_argument("--notes", action="append", choices=["none", "all"], help="WooCommerce; default both")
    parser.add_argument("--page-size", type=int, default=250, help="WooCommerce caps it at 100")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--max-cap", type=int, default=50, help="WebCommander sandbox: orders a page at most (0: none)"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the minimal peer pipeline")
    parser.add_argument(
        "--state", action="store_true", help="with a SQLite state store, as `ordersync backfill` runs"
    )
    parser.add_argument("--workers", type=int, help="mapping processes (default: one per core)")
    parser.add_argument(
        "--shop-workers",
        type=int,
        default=0,
        help="sandbox: requests it serves at once, like PHP-FPM (0: any)",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a mirror setting (batch_bytes=8388608)",
    )
    args = parser.parse_args()
    sizes = args.orders or [10_000, 100_000]
    latencies = args.latency if args.latency is not None else [0.0, 50.0]
    platforms = args.platform or ["webcommander", "woocommerce"]
    print(f"machine: {os.cpu_count()} cores; page size {args.page_size}, concurrency {args.concurrency}")
    print(
        f"{'platform':>12} {'notes':>5} {'orders':>8} {'latency':>8} {'seconds':>8} {'orders/s':>9} "
        f"{'peak RSS MB':>12} {'worker MB':>10} {'requests':>9} {'1st page s':>10} {'1st batch s':>11} "
        f"{'peer/s':>7} {'ratio':>6} {'peer MB':>8} {'gate peak/final':>15} {'bound/s':>8} "
        f"{'CPU main+workers, µs/order':>26}"
    )
    for platform in platforms:
        note_modes = ["-"] if platform == "webcommander" else (args.notes or ["none", "all"])
        for n in sizes:
            for latency in latencies:
                for notes in note_modes:
                    extra = ("--shop-workers", str(args.shop_workers)) if args.shop_workers else ()
                    sandbox, url = start_sandbox(platform, n, latency, args.max_cap, extra=extra)
                    try:
                        with tempfile.TemporaryDirectory() as tmp:
                            shop = shop_config(platform, url, args.page_size, args.concurrency, notes)
                            mirror = dict(item.split("=", 1) for item in args.mirror)
                            result = run_backfill(shop, Path(tmp), mirror, args.workers, args.state)
                            # The WooCommerce sandbox keeps ~2 % of its orders in the trash, which
                            # `status=any` leaves out, as on a real shop.
                            assert result["orders"] == result["loaded"] > 0.95 * n, result
                            # The peer reads refunds but no notes: compared where ordersync reads none.
                            peer = None
                            if not args.no_peer and notes != "all":
                                peer = run_peer(platform, url, Path(tmp))
                                assert peer["orders"] == result["orders"], (peer, result)
                    finally:
                        sandbox.terminate()
                        sandbox.wait()
                    print(
                        f"{platform:>12} {notes:>5} {n:>8,} {latency:>6.0f}ms {result['seconds']:>8.2f} "
                        f"{result['orders_per_s']:>9,.0f} {result['peak_rss_mb']:>12.0f} "
                        f"{result['worker_rss_mb']:>10.0f} {result['requests']:>9,} "
                        f"{result['first_page_s']:>10.2f} {result['first_batch_s']:>11.2f} "
                        + _peer_cells(result, peer)
                        + _gate_cells(result, shop, latency)
                        + _cpu_cell(result),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
