"""The WooCommerce webhook receiver: only a delivery signed with the shop's secret counts, the ping
WooCommerce sends on creation is answered, and a repeated or oversized delivery changes nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from structlog.testing import capture_logs

from ordersync.config import Settings, parse_settings
from ordersync.state.store import StateStore
from ordersync.state.tables import webhook_deliveries
from ordersync.webhooks.receiver import webhook_routes
from ordersync.webhooks.signature import sign, verify, wp_specialchars_decode

SECRET = "s3cret&amp;more"  # as WordPress may hold it: the key is the decoded text
URL = "/webhooks/woocommerce/woo"


def test_the_signature_is_woocommerces() -> None:
    body = b'{"id":123,"status":"processing"}'
    expected = base64.b64encode(hmac.new(b"s3cret&more", body, hashlib.sha256).digest()).decode()
    assert wp_specialchars_decode(SECRET) == "s3cret&more"
    assert sign(body, SECRET) == expected
    assert verify(body, expected, SECRET)
    assert not verify(body + b" ", expected, SECRET)  # the raw bytes, not their meaning
    assert not verify(body, None, SECRET) and not verify(body, "", SECRET)


def _settings(tmp_path: Path) -> Settings:
    return parse_settings(
        {
            "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
            "ops": {"webhook_max_bytes": 4096},
            "shops": [
                {
                    "name": "woo",
                    "platform": "woocommerce",
                    "base_url": "https://shop.test",
                    "consumer_key": "ck_x",
                    "consumer_secret": "cs_x",
                    "webhook_secret": SECRET,
                },
                {
                    "name": "quiet",
                    "platform": "woocommerce",
                    "base_url": "https://other.test",
                    "consumer_key": "ck_y",
                    "consumer_secret": "cs_y",
                },
            ],
        }
    )


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Any, StateStore, list[tuple[str, str | None]]]]:
    settings = _settings(tmp_path)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.upgrade()
    queued: list[tuple[str, str | None]] = []
    app = Starlette(routes=webhook_routes(settings, store, lambda shop, order: queued.append((shop, order))))

    def post(body: bytes, headers: dict[str, str], url: str = URL) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
                return await client.post(url, content=body, headers=headers)

        return asyncio.run(go())

    yield post, store, queued
    store.dispose()


def _delivery(
    order: dict[str, Any], delivery: str = "d1", topic: str = "order.updated"
) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(order)
    return body, {
        "content-type": "application/json",
        "x-wc-webhook-source": "https://shop.test/",
        "x-wc-webhook-topic": topic,
        "x-wc-webhook-resource": "order",
        "x-wc-webhook-event": topic.split(".")[1],
        "x-wc-webhook-signature": sign(body, SECRET),
        "x-wc-webhook-id": "7",
        "x-wc-webhook-delivery-id": delivery,
    }


def _rows(store: StateStore) -> int:
    with store.engine.connect() as con:
        return con.execute(select(func.count()).select_from(webhook_deliveries)).scalar_one()


def test_a_signed_delivery_queues_its_order_once(receiver: Any) -> None:
    post, store, queued = receiver
    assert _rows(store) == 0
    order = {"id": 123, "status": "processing", "date_modified_gmt": "2026-12-07T10:00:00"}
    body, headers = _delivery(order)
    first = post(body, headers)
    assert (first.status_code, first.json()) == (200, {"outcome": "queued"})
    assert queued == [("woo", "123")]
    # WooCommerce (or a proxy) sends the same delivery again: nothing happens.
    assert post(body, headers).json() == {"outcome": "duplicate"}
    # Another delivery of the same order version (two topics for one save): nothing happens either.
    again = post(*_delivery(order, delivery="d2", topic="order.created"))
    assert again.json() == {"outcome": "seen"}
    # A newer version of the order is news.
    newer = {**order, "status": "completed", "date_modified_gmt": "2026-12-07T10:00:05"}
    assert post(*_delivery(newer, delivery="d3")).json() == {"outcome": "queued"}
    # So is a second save within the same second (date_modified has whole seconds).
    same_second = {**newer, "status": "on-hold"}
    assert post(*_delivery(same_second, delivery="d3b")).json() == {"outcome": "queued"}
    # A deletion carries only the id; it is queued so the next read finds the order gone.
    assert post(*_delivery({"id": 123}, delivery="d4", topic="order.deleted")).json() == {"outcome": "queued"}
    assert queued == [("woo", "123")] * 4
    assert _rows(store) == 5  # each verified delivery once (hash and ids, never the body)


def test_the_creation_ping_is_answered_and_changes_nothing(receiver: Any) -> None:
    post, store, queued = receiver
    answer = post(b"webhook_id=7", {"content-type": "application/x-www-form-urlencoded"})
    assert (answer.status_code, answer.json()) == (200, {"outcome": "ping"})
    assert queued == [] and _rows(store) == 0


@pytest.mark.parametrize("how", ["forged", "missing", "other secret", "body changed"])
def test_a_delivery_not_signed_with_the_shops_secret_is_refused_and_logged_without_its_body(
    receiver: Any, how: str
) -> None:
    post, store, queued = receiver
    body, headers = _delivery({"id": 5, "billing": {"email": "erika@example.com"}}, delivery="evil")
    if how == "forged":
        headers["x-wc-webhook-signature"] = base64.b64encode(b"x" * 32).decode()
    elif how == "missing":
        del headers["x-wc-webhook-signature"]
    elif how == "other secret":
        headers["x-wc-webhook-signature"] = sign(body, "not-the-secret")
    else:
        body = body.replace(b"5", b"6")
    with capture_logs() as logs:
        answer = post(body, headers)
    assert answer.status_code == 401
    assert queued == [] and _rows(store) == 0
    refused = [e for e in logs if e["event"] == "webhook.refused"]
    assert refused and refused[0]["delivery"] == "evil"
    assert "erika@example.com" not in repr(logs)


def test_an_oversized_body_an_unknown_shop_and_other_topics_change_nothing(receiver: Any) -> None:
    post, store, queued = receiver
    big, headers = _delivery({"id": 9, "note": "x" * 5000})
    assert post(big, headers).status_code == 413
    body, headers = _delivery({"id": 9})
    assert post(body, headers, url="/webhooks/woocommerce/nope").status_code == 404
    assert post(body, headers, url="/webhooks/woocommerce/quiet").status_code == 404  # no secret: no webhooks
    product, headers = _delivery({"id": 9}, topic="product.updated")
    assert post(product, headers).json() == {"outcome": "ignored"}
    assert queued == [] and _rows(store) == 0


def test_the_shops_webhook_status_is_the_worst_of_ordersyncs_webhooks() -> None:
    from ordersync.webhooks.manage import TOPICS, ShopWebhook, shop_status

    url = "https://me.test/webhooks/woocommerce/woo"
    ours = [ShopWebhook(n, f"ordersync {t}", t, "active", url) for n, t in enumerate(TOPICS)]
    other = ShopWebhook(99, "Zapier", "order.updated", "disabled", "https://zapier.test")
    assert shop_status([*ours, other], url) == "active"  # another app's webhook is not ours
    assert shop_status(ours[:2], url) == "incomplete"
    ours[1] = ShopWebhook(1, ours[1].name, ours[1].topic, "disabled", url)
    assert shop_status(ours, url) == "disabled"
    assert shop_status([other], url) == "missing"


def test_status_says_when_woocommerce_disabled_the_webhooks(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from ordersync.state import webhooks
    from ordersync.status import collect, render

    settings = _settings(tmp_path)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.upgrade()
    try:
        webhooks.save_secret(store, "woo", "generated", "https://me.test/webhooks/woocommerce/woo")
        webhooks.note_shop_status(store, "woo", "disabled")
        statuses = collect(settings, store, now=datetime.now(UTC))
    finally:
        store.dispose()
    woo = next(s for s in statuses if s.shop == "woo")
    assert woo.webhooks == "disabled" and woo.to_json()["webhooks"] == "disabled"
    caption = str(render(statuses).caption)
    assert "webhooks are disabled" in caption and "ordersync webhooks install" in caption
    assert "generated" not in repr(woo.to_json())  # the secret is never shown


def test_the_sandbox_shop_takes_its_webhook_faults(tmp_path: Path) -> None:
    from ordersync.sandbox.server import shop_app
    from ordersync.sandbox.woocommerce.webhooks import WebhookFaults

    woo = _settings(tmp_path).shop("woo")
    app = shop_app(woo, orders=2, seed=1, webhook_faults=WebhookFaults(duplicate_rate=1.0, forged_rate=0.5))
    sender = app.app.app.state.webhooks  # type: ignore[attr-defined]
    assert (sender.faults.duplicate_rate, sender.faults.forged_rate) == (1.0, 0.5)
    sender.close()


def test_deliveries_are_remembered_for_thirty_days(receiver: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from ordersync.state import webhooks

    post, store, queued = receiver
    body, headers = _delivery({"id": 1, "date_modified_gmt": "2026-12-07T10:00:00"})
    assert post(body, headers).json() == {"outcome": "queued"} and queued == [("woo", "1")]
    assert webhooks.prune(store, "woo", now=datetime.now(UTC) + timedelta(days=29)) == 0
    assert post(body, headers).json() == {"outcome": "duplicate"}
    assert webhooks.prune(store, "woo", now=datetime.now(UTC) + timedelta(days=31)) == 1
    assert _rows(store) == 0


def test_the_sandbox_sends_restored_and_ids_as_woocommerce_makes_them(tmp_path: Path) -> None:
    """Out of the trash is `order.restored`; a delivery id is the webhook's and the second's hash."""
    from ordersync.sandbox.woocommerce.app import create_app as create_woo_app
    from ordersync.sandbox.woocommerce.store import WooCommerceStore

    woo = WooCommerceStore(orders=3, seed=2)
    sender = create_woo_app(woo).app.app.state.webhooks
    topics: list[tuple[str, int]] = []
    woo.listeners.append(lambda topic, order_id: topics.append((topic, order_id)))
    order = next(iter(woo.orders.values()))
    woo.trash(order.id)
    woo.set_status(order, order.previous_status or "processing")
    assert ("order.deleted", order.id) in topics and ("order.restored", order.id) in topics
    sent: list[str] = []
    sender._post = lambda webhook, body, headers: sent.append(headers["X-WC-Webhook-Delivery-ID"]) or 200  # type: ignore[method-assign]
    hook = sender.create({"topic": "order.updated", "delivery_url": "http://127.0.0.1:9/hook"})
    began = int(time.time())
    woo.set_status(order, "completed")
    woo.set_status(order, "on-hold")
    sender.drain()
    sender.close()
    ended = int(time.time())
    assert len(sent) == 2 and hook.failure_count == 0
    expected = {hashlib.md5(f"{hook.id}{second}".encode()).hexdigest() for second in range(began, ended + 1)}
    assert set(sent) <= expected
