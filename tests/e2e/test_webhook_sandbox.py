"""The sandbox WooCommerce sends webhooks as WooCommerce does, to a running `ordersync run`: a status
change reaches the mirror through a delivery within seconds; deliveries sent twice change nothing more;
deliveries signed with another secret are refused until WooCommerce disables the webhook; and with
no webhook at all the next poll still brings the change."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import yaml

from ordersync.sandbox.server import SandboxServer
from ordersync.sandbox.woocommerce.app import DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET
from ordersync.sandbox.woocommerce.app import create_app as create_woo_app
from ordersync.sandbox.woocommerce.store import WooCommerceStore
from ordersync.sandbox.woocommerce.webhooks import WebhookFaults, WebhookSender

from .test_ops import _free_port

SECRET = "whsec-sandbox-2"


def _status(mirror: Path, order_id: int) -> str | None:
    try:
        with duckdb.connect(str(mirror), read_only=True) as con:
            row = con.execute("SELECT status FROM orders WHERE order_id = ?", [str(order_id)]).fetchone()
    except duckdb.Error:  # the daemon holds the file for a moment
        return None
    return None if row is None else str(row[0])


@contextmanager
def _shop_and_daemon(
    tmp_path: Path, *, interval: float, faults: WebhookFaults | None = None, secret: str | None = SECRET
) -> Iterator[tuple[WooCommerceStore, WebhookSender, str, Path, Path]]:
    woo = WooCommerceStore(orders=30, seed=9, timezone="Europe/Berlin", currency="EUR")
    app = create_woo_app(woo, webhook_faults=faults)
    sender: WebhookSender = app.app.app.state.webhooks
    port = _free_port()
    with SandboxServer(app) as server:
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
                    "schedule": {"interval": interval},
                    **({"webhook_secret": secret} if secret else {}),
                }
            ],
        }
        (tmp_path / "sync.yaml").write_text(yaml.safe_dump(config))
        log = tmp_path / "daemon.log"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "ordersync.cli", "run", "-c", str(tmp_path / "sync.yaml"), "--log-json"],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        mirror = tmp_path / "m.duckdb"
        try:
            deadline = time.monotonic() + 60
            first = next(iter(woo.orders))
            while _status(mirror, first) is None:
                assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            time.sleep(1.0)  # the first run has ended
            yield woo, sender, f"http://127.0.0.1:{port}/webhooks/woocommerce/woo", mirror, log
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            sender.close()
        assert daemon.returncode == 0, log.read_text()[-3000:]


def _wait_for(mirror: Path, order_id: int, status: str, seconds: float) -> float:
    started = time.monotonic()
    while _status(mirror, order_id) != status:
        assert time.monotonic() - started < seconds, _status(mirror, order_id)
        time.sleep(0.05)
    return time.monotonic() - started


def test_the_sandbox_delivers_and_a_status_change_reaches_the_mirror(tmp_path: Path) -> None:
    with _shop_and_daemon(tmp_path, interval=3600, faults=WebhookFaults(duplicate_rate=1.0)) as (
        woo,
        sender,
        url,
        mirror,
        log,
    ):
        sender.create({"topic": "order.updated", "delivery_url": url, "secret": SECRET, "name": "ordersync"})
        order = next(o for o in woo.orders.values() if o.status == "processing")
        woo.set_status(order, "completed")
        assert _wait_for(mirror, order.id, "completed", 15) < 10
        sender.drain()
        # Every delivery went out twice (a duplicating proxy): each answered 200, each pair applied once.
        answered = [s for s in sender.sent if s["order"] == order.id]
        assert len(answered) >= 2 and all(s["status"] == 200 for s in answered)
        outcomes = [line for line in log.read_text().splitlines() if '"webhook.received"' in line]
        assert any('"outcome": "duplicate"' in line for line in outcomes), outcomes
        assert sum('"outcome": "queued"' in line for line in outcomes) == len(
            {s["delivery"] for s in answered}
        )
        # An order changed twice in quick succession ends in its last state.
        woo.set_status(order, "on-hold")
        woo.set_status(order, "processing")
        _wait_for(mirror, order.id, "processing", 15)
        sender.drain()
        time.sleep(1.0)
        assert _status(mirror, order.id) == "processing"


def test_forged_deliveries_are_refused_until_the_webhook_is_disabled_and_the_poll_still_brings_the_change(
    tmp_path: Path,
) -> None:
    with _shop_and_daemon(tmp_path, interval=4, faults=WebhookFaults(forged_rate=1.0)) as (
        woo,
        sender,
        url,
        mirror,
        log,
    ):
        webhook = sender.create({"topic": "order.updated", "delivery_url": url, "secret": SECRET})
        orders = [o for o in woo.orders.values() if o.status in ("processing", "on-hold", "pending")][:4]
        for order in orders:
            woo.set_status(order, "cancelled")
        sender.drain(30)
        # Every attempt was refused (401): after five failures in a row and one more, disabled.
        assert sender.sent and all(s["status"] == 401 for s in sender.sent)
        assert webhook.status == "disabled"
        # Nothing was lost: the poll (every 4 s) brings each change anyway.
        for order in orders:
            _wait_for(mirror, order.id, "cancelled", 20)
        assert '"webhook.refused"' in log.read_text()


def test_webhooks_install_list_and_remove_through_the_cli(tmp_path: Path) -> None:
    """No secret in the config: `webhooks install` makes one, keeps it in the state store (never
    printed), registers every order topic, and the running daemon verifies deliveries with it."""
    from typer.testing import CliRunner

    from ordersync.cli import app
    from ordersync.state import webhooks
    from ordersync.state.store import StateStore

    runner = CliRunner()
    with _shop_and_daemon(tmp_path, interval=3600, secret=None) as (woo, sender, url, mirror, _log):
        config = str(tmp_path / "sync.yaml")
        installed = runner.invoke(
            app, ["webhooks", "install", "--config", config, "--shop", "woo", "--url", url]
        )
        assert installed.exit_code == 0, installed.output
        hooks = list(sender.webhooks.values())
        assert sorted(h.topic for h in hooks) == [
            "order.created",
            "order.deleted",
            "order.restored",
            "order.updated",
        ]
        assert {h.delivery_url for h in hooks} == {url} and len({h.secret for h in hooks}) == 1
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            assert webhooks.secret_of(store, "woo") == hooks[0].secret
        finally:
            store.dispose()
        assert hooks[0].secret not in installed.output

        order = next(o for o in woo.orders.values() if o.status == "processing")
        woo.set_status(order, "completed")
        assert _wait_for(mirror, order.id, "completed", 15) < 10

        listed = runner.invoke(app, ["webhooks", "list", "--config", config, "--shop", "woo"])
        assert listed.exit_code == 0 and listed.stdout.count("ordersync") == 4
        # Installing again replaces ordersync's webhooks rather than adding four more.
        again = runner.invoke(app, ["webhooks", "install", "--config", config, "--shop", "woo", "--url", url])
        assert again.exit_code == 0 and len(sender.webhooks) == 4
        removed = runner.invoke(app, ["webhooks", "remove", "--config", config, "--shop", "woo"])
        assert removed.exit_code == 0 and sender.webhooks == {}


def test_deliveries_never_hold_back_the_poll(tmp_path: Path) -> None:
    """Deliveries more often than the poll's interval: the poll still runs on its schedule (it is the
    net under every delivery), beside the webhook runs."""
    from ordersync.state import records
    from ordersync.state.store import StateStore

    with _shop_and_daemon(tmp_path, interval=3) as (woo, sender, url, mirror, _log):
        sender.create({"topic": "order.updated", "delivery_url": url, "secret": SECRET})
        orders = [o for o in woo.orders.values() if o.status in ("processing", "on-hold")][:2]
        started = time.time()
        for n in range(18):  # a change every half second for nine seconds
            order = orders[n % 2]
            woo.set_status(order, "on-hold" if order.status == "processing" else "processing")
            time.sleep(0.5)
        sender.drain()
        _wait_for(mirror, orders[0].id, orders[0].status.replace("-", "_"), 15)  # canonical on_hold
        store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            runs = [r for r in records.last_runs(store, "woo", 200) if r.started_at.timestamp() >= started]
        finally:
            store.dispose()
    kinds = [r.kind for r in runs]
    assert kinds.count("webhook") >= 3, kinds
    assert kinds.count("sync") >= 2, kinds  # about three polls in nine seconds, whatever came in between
