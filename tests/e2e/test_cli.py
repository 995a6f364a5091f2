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
    done = [e for e in events if e["event"] == "backfill.done"]
    assert done and done[0]["fetched"] == 20 and done[0]["shop"] == "demo" and "timestamp" in done[0]
