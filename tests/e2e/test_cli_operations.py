"""The CLI as an operator runs it unattended: no silent demo, one shop's failure contained, and a clean
stop on SIGTERM and SIGINT (the run recorded 'abandoned', exit 143 / 130, no traceback)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.config import parse_settings
from ordersync.sandbox.faults import FaultConfig
from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID, create_app
from ordersync.sandbox.webcommander.store import WebCommanderStore
from ordersync.state import records

from .conftest import Shop

runner = CliRunner()

WRITES = [
    ["push", "refund", "--shop", "woocommerce-sandbox", "--order", "1", "--amount", "5"],
    ["push", "comment", "--shop", "webcommander-sandbox", "--order", "1", "--text", "hi"],
    ["push", "cancel", "--shop", "webcommander-sandbox", "--order", "1"],
    ["outbox", "drain"],
    ["outbox", "retry"],
    ["outbox", "drop", "1"],
    ["db", "upgrade"],
]


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("ORDERSYNC_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("argv", WRITES, ids=[" ".join(a[:2]) for a in WRITES])
def test_a_write_without_a_config_is_refused_and_touches_nothing(no_config: Path, argv: list[str]) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert "needs a config" in message and "--config" in message and "ORDERSYNC_CONFIG" in message
    assert "--demo" in message
    assert not list(no_config.iterdir()), "nothing may be created in the demo's files"


def test_a_write_on_the_demo_runs_when_asked_with_demo(no_config: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--demo"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("demo:")
    assert (no_config / "ordersync-state.db").exists()


def test_a_read_without_a_config_says_first_that_it_runs_on_the_demo(no_config: Path) -> None:
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("demo:") and "ORDERSYNC_CONFIG" in first


def test_the_config_is_read_from_ordersync_config(no_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = no_config / "from-env.yaml"
    path.write_text("workers: -1\nshops: []\n")
    monkeypatch.setenv("ORDERSYNC_CONFIG", str(path))
    result = runner.invoke(app, ["push", "cancel", "--shop", "x", "--order", "1"])
    assert result.exit_code == 2
    assert "demo:" not in result.stderr and "workers" in result.stderr and "from-env.yaml" in result.stderr


def _shop_entry(name: str, base_url: str, token: str) -> dict[str, object]:
    return {
        "name": name,
        "platform": "webcommander",
        "base_url": base_url,
        "uuid": DEFAULT_UUID,
        "access_token": token,
        "timezone": "Australia/Melbourne",
        "currency": "AUD",
        "page_size": 50,
    }


def _config(tmp_path: Path, shops: list[dict[str, object]], **extra: object) -> Path:
    path = tmp_path / "sync.yaml"
    config = {
        "mirror": {"path": str(tmp_path / "m.duckdb")},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}", "auto_upgrade": True},
        "workers": 2,
        "http": {"max_retries": 0},
        "shops": shops,
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_one_shop_failing_does_not_stop_the_others(small_shop: Shop, tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        [
            _shop_entry("refused", small_shop.base_url, "not-the-token"),
            _shop_entry("unreachable", "http://127.0.0.1:9", DEFAULT_TOKEN),
            _shop_entry("good", small_shop.base_url, DEFAULT_TOKEN),
        ],
    )
    result = runner.invoke(app, ["backfill", "-c", str(config), "--no-progress"])
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "FAILED refused:" in message and "credentials refused" in message
    assert "FAILED unreachable:" in message and "127.0.0.1:9" in message
    assert "good" in result.stdout and "not-the-token" not in result.output
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        shops = dict(con.execute("SELECT shop, count(*) FROM orders GROUP BY shop").fetchall())
    assert shops == {"good": 600}
    store = parse_settings(yaml.safe_load(config.read_text())).state.open_ready()
    try:
        assert [r.status for r in records.last_runs(store, "refused", 5)] == ["failed"]
        assert [r.status for r in records.last_runs(store, "good", 5)] == ["ok"]
    finally:
        store.dispose()


@pytest.fixture
def slow_shop() -> Iterator[Shop]:
    store = WebCommanderStore(orders=4000, seed=11)
    app_ = create_app(store, faults=FaultConfig(latency_ms=40))
    with SandboxServer(app_) as server:
        yield Shop(store, app_, server.base_url)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_backfill_stops_cleanly_on_a_signal_and_the_next_run_resumes(
    slow_shop: Shop, tmp_path: Path, signum: int, code: int
) -> None:
    config = _config(tmp_path, [{**_shop_entry("slow", slow_shop.base_url, DEFAULT_TOKEN), "concurrency": 1}])
    settings = parse_settings(yaml.safe_load(config.read_text()))
    log = tmp_path / "backfill.log"
    with log.open("wb") as sink:
        # Its own process group, signalled whole for SIGINT as a terminal's Ctrl-C is: the mapping
        # workers get it too, and must leave the stop to the run.
        process = subprocess.Popen(
            [sys.executable, "-m", "ordersync.cli", "backfill", "-c", str(config), "--no-progress"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        store = None
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                if (tmp_path / "state.db").exists():
                    store = store or settings.state.open()
                    try:
                        cursor = records.get_cursor(store, "slow", "backfill")
                    except OperationalError:  # the run is still creating the tables
                        cursor = None
                    if cursor and cursor.get("position"):
                        break
                time.sleep(0.05)
            assert process.poll() is None, log.read_text()
            if signum == signal.SIGINT:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
            assert process.wait(timeout=60) == code, log.read_text()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            if store is not None:
                store.dispose()
    output = log.read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "leaked semaphore" not in output and "resource_tracker" not in output, output
    assert f"stopped by {signal.Signals(signum).name}" in " ".join(output.split())

    store = settings.state.open()
    try:
        (run,) = records.last_runs(store, "slow", 5)
        assert run.status == "abandoned", run
        checkpoint = records.get_cursor(store, "slow", "backfill")
        assert checkpoint is not None and checkpoint["done"] is False
    finally:
        store.dispose()
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        held, distinct = con.execute("SELECT count(*), count(DISTINCT order_id) FROM orders").fetchone()
    assert 0 < held == distinct < 4000

    again = runner.invoke(app, ["backfill", "-c", str(config), "--no-progress"])
    assert again.exit_code == 0, again.output
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT order_id) FROM orders").fetchone() == (4000, 4000)
