"""The `ordersync backfill` command as a user runs it: summary, exit codes, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import yaml
from typer.testing import CliRunner

from ordersync.cli import app

from .conftest import Shop

runner = CliRunner()


def write_config(tmp_path: Path, **overrides: object) -> Path:
    config = {
        "sandbox": {"enabled": True, "orders": 300, "seed": 1},
        "workers": 2,
        "mirror": {"path": str(tmp_path / "cli.duckdb")},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}", "auto_upgrade": True},
        "shops": [
            {
                "name": "demo",
                "platform": "webcommander",
                "base_url": "http://127.0.0.1:9",
                "uuid": "U-1",
                "access_token": "sandbox-token-xyz",
                "timezone": "Australia/Melbourne",
                "currency": "AUD",
                "page_size": 50,
            }
        ],
    }
    config.update(overrides)
    path = tmp_path / "sync.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_backfill_with_embedded_sandbox_prints_a_summary_and_is_idempotent(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"])
    assert first.exit_code == 0, first.output
    assert "fetched" in first.stdout and "300" in first.stdout and "orders/s" in first.stdout
    with duckdb.connect(str(tmp_path / "cli.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone()[0] == 300
    second = runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"])
    assert second.exit_code == 0
    unchanged = next(line for line in second.stdout.splitlines() if "unchanged" in line)
    assert "300" in unchanged
    assert "sandbox-token-xyz" not in first.output + second.output


def test_a_store_that_is_not_migrated_is_refused_before_any_request(tmp_path: Path) -> None:
    config = write_config(tmp_path, state={"url": f"sqlite:///{tmp_path / 'new.db'}"})
    for command in ("backfill", "sync"):
        result = runner.invoke(app, [command, "--config", str(config), "--no-progress"])
        assert result.exit_code == 2
        message = " ".join(result.stderr.split())
        assert "is at no revision" in message and "run `ordersync db upgrade` first" in message
    assert not (tmp_path / "cli.duckdb").exists()
    assert runner.invoke(app, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    assert runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"]).exit_code == 0


def test_sync_once_after_a_backfill_reads_only_what_changed(tmp_path: Path) -> None:
    base = yaml.safe_load(write_config(tmp_path).read_text())
    config = write_config(tmp_path, shops=[*base["shops"], WOO])
    never_backfilled = runner.invoke(app, ["sync", "--once", "--config", str(config), "--no-progress"])
    assert never_backfilled.exit_code == 0, never_backfilled.output
    result = runner.invoke(app, ["sync", "--once", "--config", str(config), "--no-progress", "--log-json"])
    assert result.exit_code == 0, result.output
    assert "sync into" in result.stdout and "requests" in result.stdout
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    done = {e["shop"]: e for e in events if e["event"] == "run.done"}
    assert done["demo"]["kind"] == "sync" and done["demo"]["mapped"] == 0 and done["demo"]["loaded"] == 0
    assert done["woo"]["kind"] == "sync" and done["woo"]["loaded"] == 0 and done["woo"]["notes_checked"] > 0


def test_bad_config_fails_before_any_request_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, workers=-1)
    result = runner.invoke(app, ["backfill", "--config", str(config)])
    assert result.exit_code == 2
    assert "workers" in result.stderr and "greater than or equal to 0" in result.stderr
    assert not (tmp_path / "cli.duckdb").exists()


def test_wrong_token_exits_1_with_a_clear_message(small_shop: Shop, tmp_path: Path) -> None:
    config = write_config(tmp_path, sandbox={"enabled": False})
    data = yaml.safe_load(config.read_text())
    data["shops"][0].update(base_url=small_shop.base_url, uuid="F8A3-A88E-C6EF-B1CB")
    config.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"])
    assert result.exit_code == 1
    assert "credentials refused" in result.stderr and "shop 'demo'" in result.stderr
    assert "sandbox-token-xyz" not in result.output


def test_log_json_writes_one_json_object_per_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, sandbox={"enabled": True, "orders": 60, "seed": 2})
    result = runner.invoke(
        app, ["backfill", "--config", str(config), "--no-progress", "--log-json", "--limit", "20"]
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    done = [e for e in events if e["event"] == "run.done"]
    assert done and done[0]["fetched"] == 20 and done[0]["shop"] == "demo" and "timestamp" in done[0]
    assert done[0]["kind"] == "backfill" and done[0]["status"] == "ok"


WOO = {
    "name": "woo",
    "platform": "woocommerce",
    "base_url": "http://127.0.0.1:9",
    "consumer_key": "ck_cli_test_key",
    "consumer_secret": "cs_cli_test_secret_value",
    "timezone": "Europe/Berlin",
    "currency": "EUR",
}


def test_both_platforms_in_one_run_and_one_file(tmp_path: Path) -> None:
    base = yaml.safe_load(write_config(tmp_path).read_text())
    config = write_config(tmp_path, shops=[*base["shops"], WOO])
    result = runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "demo" in result.stdout and "woo" in result.stdout and "from 2 shops" in result.stdout
    with duckdb.connect(str(tmp_path / "cli.duckdb"), read_only=True) as con:
        counts = dict(con.execute("SELECT platform, count(*) FROM orders GROUP BY platform").fetchall())
        shops = con.execute(
            "SELECT shop, platform, api, timezone, currency FROM shops ORDER BY shop"
        ).fetchall()
    assert counts["webcommander"] == 300 and 280 <= counts["woocommerce"] < 300  # a few are in the trash
    # The shops dimension: each shop's zone and API, as the config gave them.
    assert shops == [
        ("demo", "webcommander", "external-app", "Australia/Melbourne", "AUD"),
        ("woo", "woocommerce", "wc/v3", "Europe/Berlin", "EUR"),
    ]
    assert "cs_cli_test_secret_value" not in result.output
    # Again: the embedded shops come up on other ports, yet nothing changed, so nothing is rewritten.
    again = runner.invoke(app, ["backfill", "--config", str(config), "--no-progress", "--log-json"])
    assert again.exit_code == 0, again.output
    events = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    done = {e["shop"]: e for e in events if e["event"] == "run.done"}
    assert done["woo"]["loaded"] == 0 and done["woo"]["unchanged"] == counts["woocommerce"]
    assert done["demo"]["loaded"] == 0


def test_wrong_woocommerce_secret_exits_1_naming_shop_and_code_not_the_secret(tmp_path: Path) -> None:
    from ordersync.sandbox.server import SandboxServer
    from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, create_app
    from ordersync.sandbox.woocommerce.store import WooCommerceStore

    with SandboxServer(create_app(WooCommerceStore(orders=20, seed=3))) as server:
        shop = {**WOO, "base_url": server.base_url, "consumer_key": DEFAULT_CONSUMER_KEY}
        config = write_config(tmp_path, sandbox={"enabled": False}, shops=[shop])
        result = runner.invoke(app, ["backfill", "--config", str(config), "--no-progress"])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "shop 'woo'" in message and "woocommerce_rest_authentication_error" in message
    assert "HTTP 401" in message and "oauth_signature" not in message
    assert "cs_cli_test_secret_value" not in result.output


def test_sandbox_command_serves_both_shops(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    import httpx

    from ordersync.platforms.woocommerce.auth import OAuth1Auth
    from ordersync.sandbox.webcommander.app import DEFAULT_TOKEN, DEFAULT_UUID
    from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET

    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ordersync.cli",
            "sandbox",
            "--orders",
            "30",
            "--port",
            str(ports[0]),
            "--woo-port",
            str(ports[1]),
            "--max-cap",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "ready":
                break
        assert any("WebCommander sandbox" in line for line in lines)
        assert any(f"127.0.0.1:{ports[1]}/wp-json/wc/v3/orders" in line for line in lines)
        capped = httpx.get(
            f"http://127.0.0.1:{ports[0]}/external/app/access/orders",
            params={"max": 10, "offset": 0},
            headers={"uuid": DEFAULT_UUID, "accessToken": DEFAULT_TOKEN},
        )
        assert capped.status_code == 200 and len(capped.json()["orders"]) == 3  # --max-cap
        auth = OAuth1Auth(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET)
        listed = httpx.get(
            f"http://127.0.0.1:{ports[1]}/wp-json/wc/v3/orders", params={"per_page": 5}, auth=auth
        )
        assert listed.status_code == 200 and len(listed.json()) == 5
        assert int(listed.headers["x-wp-total"]) > 25
        anonymous = httpx.get(f"http://127.0.0.1:{ports[1]}/wp-json/wc/v3/orders")
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "woocommerce_rest_cannot_view"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
