"""What an operator watches: the daemon's /healthz, /readyz and /metrics, `status --check` and
`ordersync check`."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.config import parse_settings
from ordersync.operations import AddComment
from ordersync.ops import readiness
from ordersync.sandbox.webcommander.admin_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
from ordersync.state import outbox, records
from ordersync.status import collect, problems

from .conftest import Shop

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "mirror": {"path": str(tmp_path / "m.duckdb")},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}", "auto_upgrade": True},
        "workers": 0,
        "http": {"max_retries": 0},
        "shops": [
            {
                "name": "wc",
                "platform": "webcommander",
                "base_url": base_url,
                "uuid": DEFAULT_UUID,
                "access_token": DEFAULT_TOKEN,
                "timezone": "Australia/Melbourne",
                "currency": "AUD",
                "page_size": 100,
                "schedule": {"interval": 2},
            }
        ],
        **extra,
    }


def _write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "sync.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_daemon_serves_health_readiness_and_metrics(small_shop: Shop, tmp_path: Path) -> None:
    port = _free_port()
    path = _write(tmp_path, _config(tmp_path, small_shop.base_url, ops={"listen": f"127.0.0.1:{port}"}))
    log = tmp_path / "daemon.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", "run", "-c", str(path), "--log-json"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                if (
                    ready.status_code == 200
                    and "ordersync_last_success_timestamp_seconds{"
                    in httpx.get(f"{base}/metrics", timeout=5).text
                ):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, (ready and ready.text, log.read_text()[-3000:])
        assert ready.json() == {"status": "ready", "problems": []}
        health = httpx.get(f"{base}/healthz", timeout=2)
        assert health.status_code == 200 and health.json()["status"] == "alive"

        body = httpx.get(f"{base}/metrics", timeout=5).text
        families = {f.name: f for f in text_string_to_metric_families(body)}  # valid exposition
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
        }
        assert samples[("ordersync_requests_total", (("shop", "wc"), ("status_class", "2xx")))] >= 6
        assert samples[("ordersync_orders_fetched_total", (("shop", "wc"),))] >= 600
        assert samples[("ordersync_quarantined_records", (("shop", "wc"),))] == 0
        assert samples[("ordersync_outbox_depth", (("target", "wc"),))] == 0
        assert samples[("ordersync_outbox_dead", (("target", "wc"),))] == 0
        assert 0 <= samples[("ordersync_lag_seconds", (("shop", "wc"),))] < 60
        last_ok = samples[("ordersync_last_success_timestamp_seconds", (("shop", "wc"),))]
        assert abs(last_ok - time.time()) < 60
        runs = [
            v
            for (name, labels), v in samples.items()
            if name == "ordersync_runs_total" and ("status", "ok") in labels
        ]
        assert runs and min(runs) >= 1
        assert any(name == "ordersync_run_duration_seconds_count" for name, _ in samples)
        assert DEFAULT_TOKEN not in body and DEFAULT_UUID not in body
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()[-3000:]


def test_a_port_in_use_is_one_clear_line_before_any_run(small_shop: Shop, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = _write(tmp_path, _config(tmp_path, small_shop.base_url, ops={"listen": f"127.0.0.1:{port}"}))
        result = subprocess.run(
            [sys.executable, "-m", "ordersync.cli", "run", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert f"ops.listen 127.0.0.1:{port}: cannot listen there" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    settings = parse_settings(yaml.safe_load(path.read_text()))
    store = settings.state.open_ready()
    try:
        assert records.last_runs(store, "wc", 5) == []  # no run began
    finally:
        store.dispose()


def _backfilled(small_shop: Shop, tmp_path: Path) -> Path:
    path = _write(tmp_path, _config(tmp_path, small_shop.base_url))
    done = runner.invoke(app, ["backfill", "-c", str(path), "--no-progress"])
    assert done.exit_code == 0, done.output
    return path


def test_status_check_exits_by_the_worst_problem(small_shop: Shop, tmp_path: Path) -> None:
    path = _backfilled(small_shop, tmp_path)
    ok = runner.invoke(app, ["status", "--check", "-c", str(path)])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("OK: 1 shop(s)")

    settings = parse_settings(yaml.safe_load(path.read_text()))
    later = datetime.now(UTC) + timedelta(seconds=60)  # 30 schedule periods of 2 s: stale
    store = settings.state.open_ready()
    try:
        found = problems(settings, collect(settings, store, now=later), now=later)
        assert [(p.level, p.shop) for p in found] == [(1, "wc")] and "stale" in found[0].text
        assert readiness(settings, store, datetime.now(UTC) - timedelta(hours=1), later) == [
            "shop wc: no run began in the last 3 schedule periods"
        ]
        run = records.start_run(store, "wc", "sync")
        records.finish_run(store, run, status="failed", error="credentials refused: HTTP 401")
        with store.engine.begin() as con:
            op = AddComment(order_id="1", text="x")
            outbox.enqueue(
                con, key="k-1", shop="wc", op=op, origin="cli", status="dead", last_error="HTTP 500"
            )
    finally:
        store.dispose()
    bad = runner.invoke(app, ["status", "--check", "-c", str(path)])
    assert bad.exit_code == 2, bad.output
    lines = bad.stdout.splitlines()
    assert lines[0] == "CRITICAL wc: last run failed: credentials refused: HTTP 401"
    assert "CRITICAL wc: 1 dead-lettered write(s) in the outbox" in lines


def test_check_tells_each_shop_apart(small_shop: Shop, tmp_path: Path) -> None:
    config = _config(tmp_path, small_shop.base_url)
    good = config["shops"][0]
    admin = {
        "base_url": small_shop.base_url,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
    }
    config["shops"] = [
        good,
        {**good, "name": "wrong-token", "access_token": "nope-nope"},
        {**good, "name": "closed", "base_url": "http://127.0.0.1:9"},
        {**good, "name": "admin", "admin_api": admin},
        {**good, "name": "admin-refused", "admin_api": {**admin, "client_secret": "not-the-secret"}},
    ]
    result = runner.invoke(app, ["check", "-c", str(_write(tmp_path, config))])
    assert result.exit_code == 1, result.output
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.split()}
    assert lines["wc"].startswith("ok wc (webcommander): external-app API: 600 orders listed")
    assert lines["admin"].startswith(
        "ok admin (webcommander): external-app API and v4 admin API (token issued)"
    )
    assert lines["admin-refused"].startswith("FAILED"), lines["admin-refused"]
    assert "not-the-secret" not in result.output
    assert lines["wrong-token"].startswith("FAILED") and "credentials refused" in lines["wrong-token"]
    assert lines["closed"].startswith("FAILED") and "127.0.0.1:9" in lines["closed"]
    assert "nope-nope" not in result.output
    assert not (tmp_path / "m.duckdb").exists() and not (tmp_path / "state.db").exists()


@pytest.mark.parametrize("argv", [["--version"], ["--log-level", "LOUD", "status"]])
def test_global_options(argv: list[str]) -> None:
    result = runner.invoke(app, argv)
    if argv == ["--version"]:
        assert result.exit_code == 0 and result.stdout.startswith("ordersync ")
    else:
        shown = " ".join(result.output.replace("│", " ").split())
        assert result.exit_code == 2 and "log level 'LOUD': use DEBUG, INFO, WARNING or ERROR" in shown
