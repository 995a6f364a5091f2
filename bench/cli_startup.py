"""How long `ordersync --help` and `ordersync --version` take, as a user's shell runs them.

    uv run python bench/cli_startup.py            # best and median of 10 runs each

Each run is a fresh process of the installed console script (the interpreter's start included).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    script = shutil.which("ordersync") or str(Path(sys.executable).with_name("ordersync"))
    for argv in (["--help"], ["--version"]):
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run([script, *argv], stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - started)
        print(
            f"ordersync {' '.join(argv):<10} best {min(times):.3f} s, median {statistics.median(times):.3f} s"
        )


if __name__ == "__main__":
    main()
