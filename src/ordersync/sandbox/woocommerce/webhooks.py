"""The sandbox WooCommerce's webhooks, sent as ``WC_Webhook`` sends them.

After a change, asynchronously (WooCommerce queues deliveries and builds each payload when it sends
it, so a delivery shows the order as it is then): a JSON body of the order as REST v3 renders it
(``{"id": N}`` for a deletion), signed (base64 HMAC-SHA256 of the body with the secret), with the
``X-WC-Webhook-Source``, ``-Topic``, ``-Resource``, ``-Event``, ``-Signature``, ``-ID`` and
``-Delivery-ID`` headers. An answer from 200 to 302 is a success and resets the webhook's failure
count; anything else counts a failure and, as ``failed_delivery()`` does, a webhook that fails once
more after five failures in a row is ``disabled`` and sends nothing more. The sandbox also retries a
failed delivery (``retries``), which WooCommerce leaves to a person. A new webhook is pinged with
the unsigned form body ``webhook_id=N``.

``WebhookFaults`` makes it misbehave as networks and proxies do: each delivery sent twice, deliveries
held back and sent after the next one (out of order), or signed with the wrong secret.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from ordersync.sandbox.woocommerce.store import WooCommerceStore

TOPICS = ("order.created", "order.updated", "order.deleted", "order.restored")
MAX_FAILURES = 5


@dataclass
class WebhookFaults:
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    forged_rate: float = 0.0
    seed: int = 0


@dataclass
class Webhook:
    id: int
    name: str
    topic: str
    delivery_url: str
    secret: str
    created: datetime
    status: str = "active"
    failure_count: int = 0

    def to_json(self) -> dict[str, Any]:
        resource, _, event = self.topic.partition(".")
        stamp = self.created.strftime("%Y-%m-%dT%H:%M:%S")
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "topic": self.topic,
            "resource": resource,
            "event": event,
            "hooks": [],
            "delivery_url": self.delivery_url,
            "date_created": stamp,
            "date_created_gmt": stamp,
            "date_modified": stamp,
            "date_modified_gmt": stamp,
        }


def _sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class _Delivery:
    webhook_id: int
    order_id: int
    attempt: int = 0
    not_before: float = 0.0


@dataclass
class WebhookSender:
    """The shop's webhooks and the worker that delivers them."""

    store: WooCommerceStore
    faults: WebhookFaults = field(default_factory=WebhookFaults)
    retries: int = 2
    webhooks: dict[int, Webhook] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Every attempt: webhook, topic, order, delivery id, status code (None: no answer)."""

    def __post_init__(self) -> None:
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._held: _Delivery | None = None
        self._rng = random.Random(self.faults.seed)
        self._next_id = 1
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=5.0)

    # -- the registry (REST /webhooks) -------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> Webhook:
        topic, url = str(body.get("topic") or ""), str(body.get("delivery_url") or "")
        if topic not in TOPICS:
            raise ValueError(f"topic must be one of {', '.join(TOPICS)}")
        if not url.startswith(("http://", "https://")):
            raise ValueError("delivery_url must be an http(s) URL")
        with self._lock:
            webhook = Webhook(
                id=self._next_id,
                name=str(body.get("name") or f"Webhook created on {self.store.now():%b %d, %Y @ %I:%M %p}"),
                topic=topic,
                delivery_url=url,
                secret=str(body.get("secret") or _generated_secret(self._rng)),
                created=self.store.now(),
                status=str(body.get("status") or "active"),
            )
            self._next_id += 1
            self.webhooks[webhook.id] = webhook
        self._start()
        threading.Thread(target=self._ping, args=(webhook,), daemon=True).start()
        return webhook

    def delete(self, webhook_id: int) -> Webhook:
        with self._lock:
            return self.webhooks.pop(webhook_id)

    def update(self, webhook_id: int, body: dict[str, Any]) -> Webhook:
        with self._lock:
            webhook = self.webhooks[webhook_id]
            if "status" in body:
                webhook.status = str(body["status"])
                if webhook.status == "active":
                    webhook.failure_count = 0
            return webhook

    # -- deliveries --------------------------------------------------------------------------------
    def changed(self, topic: str, order_id: int) -> None:
        """The store's hook: an order was created, changed, deleted or restored."""
        for webhook in list(self.webhooks.values()):
            if webhook.status == "active" and webhook.topic == topic:
                self._queue.put(_Delivery(webhook.id, order_id))

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued delivery has been attempted (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while (self._queue.unfinished_tasks or self._held) and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
        self._client.close()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="woo-webhooks", daemon=True)
            self._thread.start()

    def _ping(self, webhook: Webhook) -> None:
        # WooCommerce shows a failed ping when the webhook is saved; the webhook stays active.
        with contextlib.suppress(httpx.HTTPError):
            self._client.post(webhook.delivery_url, content=f"webhook_id={webhook.id}".encode())

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                wait = item.not_before - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if (
                    self._held is None
                    and self._rng.random() < self.faults.reorder_rate
                    and self._queue.qsize()
                ):
                    self._held = item  # sent after the next one
                    continue
                self._deliver(item)
                if self._held is not None:
                    held, self._held = self._held, None
                    self._deliver(held)
            finally:
                self._queue.task_done()

    def _deliver(self, item: _Delivery) -> None:
        webhook = self.webhooks.get(item.webhook_id)
        if webhook is None or webhook.status != "active":
            return
        with self.store.lock:
            order = self.store.orders.get(item.order_id)
            if order is None or webhook.topic == "order.deleted":
                body = f'{{"id":{item.order_id}}}'.encode()
            else:
                body = self.store.v3_bytes(order, self.store.site_url or "http://sandbox.test")
        # As WooCommerce makes it, wp_hash(webhook id . current second): two deliveries of one
        # webhook in one second share an id, so a receiver must not take the id alone as the delivery.
        delivery_id = hashlib.md5(f"{webhook.id}{int(time.time())}".encode()).hexdigest()
        secret = (
            "forged-" + webhook.secret if self._rng.random() < self.faults.forged_rate else webhook.secret
        )
        resource, _, event = webhook.topic.partition(".")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7)",
            "X-WC-Webhook-Source": (self.store.site_url or "http://sandbox.test") + "/",
            "X-WC-Webhook-Topic": webhook.topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": _sign(body, secret),
            "X-WC-Webhook-ID": str(webhook.id),
            "X-WC-Webhook-Delivery-ID": delivery_id,
        }
        copies = 2 if self._rng.random() < self.faults.duplicate_rate else 1
        for _ in range(copies):
            code = self._post(webhook, body, headers)
            self.sent.append(
                {
                    "webhook": webhook.id,
                    "topic": webhook.topic,
                    "order": item.order_id,
                    "delivery": delivery_id,
                    "status": code,
                }
            )
            ok = code is not None and 200 <= code < 303
            if ok:
                webhook.failure_count = 0
            else:
                self._failed(webhook)
        if not ok and item.attempt < self.retries and webhook.status == "active":
            self._queue.put(
                _Delivery(
                    item.webhook_id, item.order_id, item.attempt + 1, time.monotonic() + 0.2 * 2**item.attempt
                )
            )

    def _post(self, webhook: Webhook, body: bytes, headers: dict[str, str]) -> int | None:
        try:
            return self._client.post(webhook.delivery_url, content=body, headers=headers).status_code
        except httpx.HTTPError:
            return None

    @staticmethod
    def _failed(webhook: Webhook) -> None:
        if webhook.failure_count > MAX_FAILURES:
            webhook.status = "disabled"
        else:
            webhook.failure_count += 1


def _generated_secret(rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(50))
