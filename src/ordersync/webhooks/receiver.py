"""``POST /webhooks/woocommerce/{shop}``: a WooCommerce delivery, verified, then turned into an
immediate sync of its shop.

A delivery only says which order changed. The body is never taken for the API's answer: the sync
reads the order (its refunds and notes) through the normal client, maps it, writes the mirror and
routes it, as a poll would. So a forged or replayed delivery can at most cause a harmless read, and
polling stays the net under every webhook: a delivery lost entirely is caught by the next poll.

Order of checks: the size (413, read no further), the ping WooCommerce sends on creation (a form
body ``webhook_id=N``, unsigned: 200), the signature over the raw bytes (401, logging the delivery
id, never the body), and only then the JSON. A delivery whose id and body came before, or whose
order version (id, ``date_modified``) an earlier delivery already queued, is answered 200 and changes
nothing. WooCommerce counts any answer from 200 to 302 as delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ordersync.config import Settings, WooCommerceShop
from ordersync.state import webhooks
from ordersync.state.store import StateStore
from ordersync.webhooks.signature import PING, verify

log = structlog.get_logger("ordersync.webhooks")

ORDER_TOPICS = {"order.created", "order.updated", "order.deleted", "order.restored"}

OnQueued = Callable[[str, str | None], None]
"""Called with (shop, order id) for each delivery that brings news; it must not block."""


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_routes(
    settings: Settings, store: StateStore, on_queued: OnQueued, only: set[str] | None = None
) -> list[Route]:
    """``only``: the shops the daemon runs (`run --shop`); deliveries for others answer 404."""
    shops = {
        s.name: s
        for s in settings.shops
        if isinstance(s, WooCommerceShop) and (only is None or s.name in only)
    }

    def secret_for(shop: WooCommerceShop) -> str | None:
        """The config's webhook_secret, else the one `ordersync webhooks install` kept."""
        if shop.webhook_secret is not None:
            return shop.webhook_secret.get_secret_value()
        return webhooks.secret_of(store, shop.name) or None

    async def woocommerce(request: Request) -> Response:
        name = request.path_params["shop"]
        shop = shops.get(name)
        secret = await asyncio.to_thread(secret_for, shop) if shop is not None else None
        if shop is None or secret is None:
            return JSONResponse({"error": "no WooCommerce shop with a webhook secret by that name"}, 404)
        delivery_id = request.headers.get("x-wc-webhook-delivery-id", "")
        webhook_id = request.headers.get("x-wc-webhook-id")
        try:
            body = await _body(request, settings.ops.webhook_max_bytes)
        except _TooLarge:
            log.warning(
                "webhook.too_large", shop=name, delivery=delivery_id, limit=settings.ops.webhook_max_bytes
            )
            return JSONResponse({"error": "body too large"}, 413)
        signature = request.headers.get("x-wc-webhook-signature")
        if signature is None and PING.fullmatch(body.strip()):
            log.info("webhook.ping", shop=name, webhook=body.strip().decode().partition("=")[2])
            return JSONResponse({"outcome": "ping"})
        if not verify(body, signature, secret):
            log.warning(
                "webhook.refused",
                shop=name,
                delivery=delivery_id,
                webhook=webhook_id,
                why="no signature" if not signature else "signature does not match",
            )
            return JSONResponse({"error": "signature missing or wrong"}, 401)
        topic = request.headers.get("x-wc-webhook-topic", "")
        if topic not in ORDER_TOPICS:
            log.info("webhook.ignored", shop=name, delivery=delivery_id, topic=topic)
            return JSONResponse({"outcome": "ignored"})
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            log.warning("webhook.not_json", shop=name, delivery=delivery_id, topic=topic)
            return JSONResponse({"error": "body is not JSON"}, 400)
        order = payload if isinstance(payload, dict) else {}
        order_id = str(order["id"]) if order.get("id") is not None else None
        modified = order.get("date_modified_gmt") or order.get("date_modified")
        delivery = webhooks.Delivery(
            shop=name,
            delivery_id=delivery_id,
            body_sha256=hashlib.sha256(body).hexdigest(),
            webhook_id=webhook_id,
            topic=topic,
            order_id=order_id,
            modified=str(modified) if modified is not None else None,
        )
        outcome = await asyncio.to_thread(webhooks.record, store, delivery)
        log.info(
            "webhook.received", shop=name, delivery=delivery_id, topic=topic, order=order_id, outcome=outcome
        )
        if outcome == "queued":
            on_queued(name, order_id)
        return JSONResponse({"outcome": outcome})

    return [Route("/webhooks/woocommerce/{shop}", woocommerce, methods=["POST"])]
