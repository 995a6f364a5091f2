"""A signed WooCommerce delivery to `ordersync run` syncs its shop at once, long before the next poll;
the mirror takes the order from the shop's API, never from the delivery's body."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import yaml

from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from ordersync.sandbox.woocommerce.app import create_app as create_woo_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore
from ordersync.webhooks.signature import sign

from .test_ops import _free_port

SECRET = "whsec-test-1"


def _status(mirror: Path, order_id: int) -> str | None:
    try:
        with duckdb.connect(str(mirror), read_only=True) as con:
            row = con.execute("SELECT status FROM orders WHERE order_id = ?", [str(order_id)]).fetchone()
    except duckdb.Error:  # the daemon holds the file for a moment
        return None
    return None if row is None else str(row[0])


def test_a_delivery_syncs_the_order_within_seconds(tmp_path: Path) -> None:
    woo = WooCommerceStore(orders=40, seed=5, timezone="Europe/Berlin", currency="EUR")
    port = _free_port()
    with SandboxServer(create_woo_app(woo)) as server:
        config: dict[str, Any] = {
            "mirror": {"path": str(tmp_path / "m.duckdb"), "lock_wait": 30},
            "state": {"url": f"sqlite:///{tmp_path / 'state.db'}", "auto_upgrade": True},
            "workers": 0,
            "ops": {"listen": f"127.0.0.1:{port}"},
            "shops": [
                {
                    "name": "woo",
                    "platform": "woocommerce",
                    "base_url": server.base_url,
                    "consumer_key": DEFAULT_CONSUMER_KEY,
                    "consumer_secret": DEFAULT_CONSUMER_SECRET,
                    "webhook_secret": SECRET,
                    "schedule": {"interval": 3600},  # no poll during the test: only the delivery can
                }
            ],
        }
        path = tmp_path / "sync.yaml"
        path.write_text(yaml.safe_dump(config))
        log = tmp_path / "daemon.log"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "ordersync.cli", "run", "-c", str(path), "--log-json"],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        mirror = tmp_path / "m.duckdb"
        order = next(o for o in woo.orders.values() if o.status == "processing")
        try:
            deadline = time.monotonic() + 60
            while _status(mirror, order.id) != "processing":
                assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            time.sleep(1.0)  # the first run has ended; the next poll is an hour away

            woo.set_status(order, "completed")
            # The delivery says only which order; its status field lies, and is not what lands.
            body = orjson.dumps(
                {"id": order.id, "status": "cancelled", "date_modified_gmt": "2026-12-07T10:00:00"}
            )
            headers = {
                "content-type": "application/json",
                "x-wc-webhook-topic": "order.updated",
                "x-wc-webhook-signature": sign(body, SECRET),
                "x-wc-webhook-id": "1",
                "x-wc-webhook-delivery-id": "delivery-1",
            }
            sent = time.monotonic()
            answer = httpx.post(
                f"http://127.0.0.1:{port}/webhooks/woocommerce/woo", content=body, headers=headers
            )
            assert answer.json() == {"outcome": "queued"}
            while _status(mirror, order.id) != "completed":
                assert time.monotonic() - sent < 15, (_status(mirror, order.id), log.read_text()[-3000:])
                time.sleep(0.1)
            took = time.monotonic() - sent
            assert took < 10, took
            # The run read just that order (its refunds and notes with it), not the shop's changes.
            from ordersync.state import records
            from ordersync.state.store import StateStore

            store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
            try:
                deadline = time.monotonic() + 10
                while not (runs := [r for r in records.last_runs(store, "woo", 10) if r.kind == "webhook"]):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            finally:
                store.dispose()
            assert runs[0].fetched == 1 and runs[0].details.get("targeted") == 1, runs[0]
            assert b"cancelled" not in log.read_bytes()  # the body is never logged
            forged = httpx.post(
                f"http://127.0.0.1:{port}/webhooks/woocommerce/woo",
                content=body,
                headers={
                    **headers,
                    "x-wc-webhook-signature": sign(body, "wrong"),
                    "x-wc-webhook-delivery-id": "x",
                },
            )
            assert forged.status_code == 401
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        assert daemon.returncode == 0, log.read_text()[-3000:]
