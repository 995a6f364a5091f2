"""`ordersync --help` loads no heavy library: what keeps it fast (measured in bench/cli_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["pydantic", "sqlalchemy", "duckdb", "pyarrow", "httpx", "structlog", "yaml", "asyncio", "orjson"]


def test_help_imports_none_of_the_heavy_libraries() -> None:
    code = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from ordersync.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0 and 'backfill' in result.stdout, result.output\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert loaded == [], f"`ordersync --help` imported {loaded}"
