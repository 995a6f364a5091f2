"""A signed WooCommerce delivery to `ordersync run` syncs its shop at once, long before the next poll;
the mirror takes the order from the shop's API, never from the delivery's body."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson

from ordersync.state import records
from ordersync.state.store import StateStore
from ordersync.webhooks.signature import sign

from .test_webhook_sandbox import SECRET, _shop_and_daemon, _status, _wait_for


def test_a_delivery_syncs_the_order_within_seconds(tmp_path: Path) -> None:
    with _shop_and_daemon(tmp_path, interval=3600) as (woo, _sender, url, mirror, log):
        order = next(o for o in woo.orders.values() if o.status == "processing")
        woo.set_status(order, "completed")  # no webhook is registered: only our delivery tells
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
        answer = httpx.post(url, content=body, headers=headers)
        assert answer.json() == {"outcome": "queued"}
        assert _wait_for(mirror, order.id, "completed", 15) < 10
        # The run read just that order (its refunds and notes with it), not the shop's changes.
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
        forged = {**headers, "x-wc-webhook-signature": sign(body, "wrong"), "x-wc-webhook-delivery-id": "x"}
        assert httpx.post(url, content=body, headers=forged).status_code == 401
        assert _status(mirror, order.id) == "completed"
