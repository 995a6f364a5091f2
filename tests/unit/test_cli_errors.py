"""Unusable places get one line naming them, before any request: a mirror folder that does not
exist, a sandbox port in use; and the standard library's loggers write through the same renderer."""

from __future__ import annotations

import io
import json
import logging
import socket
from pathlib import Path

import yaml
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.logging import configure_logging

runner = CliRunner()


def test_a_mirror_folder_that_does_not_exist_is_one_line_before_any_request(tmp_path: Path) -> None:
    config = tmp_path / "sync.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mirror": {"path": str(tmp_path / "missing" / "m.duckdb")},
                "state": {"url": f"sqlite:///{tmp_path / 'state.db'}", "auto_upgrade": True},
                "shops": [
                    {
                        "name": "wc",
                        "platform": "webcommander",
                        "base_url": "http://127.0.0.1:9",
                        "uuid": "u",
                        "access_token": "t",
                    }
                ],
            }
        )
    )
    result = runner.invoke(app, ["backfill", "-c", str(config), "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    missing = tmp_path / "missing"
    assert lines == [f"error: mirror.path {missing / 'm.duckdb'}: the folder {missing} does not exist"]
    assert not (tmp_path / "state.db").exists()  # refused before the state store was touched


def test_a_sandbox_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(
            app, ["sandbox", "--only", "webcommander", "--port", str(port), "--orders", "1"]
        )
    assert result.exit_code == 1, result.output
    assert f"sandbox: cannot listen on 127.0.0.1:{port}" in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_standard_library_loggers_write_json_through_structlog() -> None:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    try:
        logging.getLogger("apscheduler.scheduler").error("job %s missed", "wc")
        logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")  # chatty: hidden
        logging.getLogger("alembic.runtime.migration").warning("no revision")
    finally:
        configure_logging()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["level"], e["logger"]) for e in events] == [
        ("job wc missed", "error", "apscheduler.scheduler"),
        ("no revision", "warning", "alembic.runtime.migration"),
    ]
    assert all("timestamp" in e for e in events)
