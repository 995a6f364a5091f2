"""Where a backfill's time goes: py-spy samples of every process, summed by stage.

    uv run python bench/profile_backfill.py --platform webcommander --orders 30000
    uv run python bench/profile_backfill.py --platform woocommerce --orders 30000 --top 40
    uv run python bench/profile_backfill.py --platform webcommander --unchanged   # a scan with nothing new

Starts the same sandbox as ``backfill_bench.py``, runs one backfill under
``py-spy record --subprocesses --idle`` (py-spy from PyPI: ``uv tool install py-spy``), and prints the
share of samples per process and per stage (a stage is the first frame of a stack that matches one of
``STAGES``), then the heaviest leaf functions. Shares are of samples, so idle waits count as the
stages waiting; ``--no-idle`` leaves them out.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from backfill_bench import ROOT, shop_config, start_sandbox

STAGES = [
    ("http (httpx, httpcore, auth)", ("httpx/", "httpcore/", "oauthlib/", "h11/", "ordersync/http.py")),
    ("page heads (msgspec)", ("read_heads (", "_slow_heads (")),
    ("split + hash", ("order_digest (", "split_records (")),
    ("parse (orjson)", ("orjson",)),
    ("validate (pydantic)", ("pydantic/",)),
    ("map (engine, converters)", ("mapping/engine.py", "mapping/converters.py")),
    ("arrow tables (columnar, checked)", ("mirror/columnar.py", "mirror/batch.py", "pyarrow/")),
    ("spool", ("sync/spool.py",)),
    ("duckdb write", ("mirror/store.py", "duckdb")),
    ("state store", ("sqlalchemy/", "state/records.py")),
    ("pool pipes (pickle)", ("multiprocessing/connection.py", "multiprocessing/queues.py", "pickle")),
    ("start-up (imports)", ("<frozen importlib", "spawn.py")),
    ("event loop", ("asyncio/",)),
]


def stage_of(stack: str) -> str:
    for name, marks in STAGES:
        if any(mark in stack for mark in marks):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--platform", choices=["webcommander", "woocommerce"], default="webcommander")
    parser.add_argument("--orders", type=int, default=30_000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-idle", action="store_true")
    parser.add_argument(
        "--unchanged",
        action="store_true",
        help="profile a second backfill, over a mirror that has every order",
    )
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path.home() / ".local/bin/py-spy")
    sandbox, url = start_sandbox(args.platform, args.orders, args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            config = work / "bench.yaml"
            shop = shop_config(args.platform, url, 250, 4, "none")
            config.write_text(json.dumps({"mirror": {"path": str(work / "m.duckdb")}, "shops": [shop]}))
            code = (
                "import asyncio\nfrom pathlib import Path\n"
                "from ordersync.config import load_settings\n"
                "from ordersync.logging import configure_logging\n"
                "from ordersync.sync.backfill import backfill_shop\nconfigure_logging(level='WARNING')\n"
                f"s = load_settings(Path({str(config)!r}))\n"
                "print(asyncio.run(backfill_shop(s.shops[0], s, s.mirror.open())).fetched)\n"
            )
            if args.unchanged:
                subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            raw = work / "profile.txt"
            command = [spy, "record", "--subprocesses", "-r", str(args.rate), "-f", "raw", "-o", str(raw)]
            if not args.no_idle:
                command.append("--idle")
            subprocess.run(
                [*command, "--", sys.executable, "-c", code],
                cwd=ROOT,
                check=True,
                env=os.environ,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            report(raw.read_text().splitlines(), args.top)
    finally:
        sandbox.terminate()
        sandbox.wait()


def report(lines: list[str], top: int) -> None:
    by_process: collections.Counter[str] = collections.Counter()
    by_stage: collections.Counter[tuple[str, str]] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        process = "worker" if "spawn_main" in stack else "main"
        total += n
        by_process[process] += n
        # The innermost frame that names a stage decides it (a DuckDB call from the writer thread is
        # "duckdb write" even though the thread started in asyncio).
        stage = "other"
        for frame in reversed(frames):
            found = stage_of(frame)
            if found != "other":
                stage = found
                break
        by_stage[(process, stage)] += n
        leaves[frames[-1] if frames else "?"] += n
    print(f"samples: {total}")
    for process, n in by_process.most_common():
        print(f"  {process:<8} {n / total:6.1%}")
    print("by stage (share of all samples):")
    for (process, stage), n in by_stage.most_common():
        print(f"  {process:<8} {stage:<32} {n / total:6.1%}")
    print("heaviest leaf frames:")
    for frame, n in leaves.most_common(top):
        print(f"  {n / total:6.1%}  {frame[:150]}")


if __name__ == "__main__":
    main()
