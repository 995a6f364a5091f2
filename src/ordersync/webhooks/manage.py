"""Registering ordersync's webhooks with a WooCommerce shop through its REST API (``/webhooks``).

``install`` creates one webhook per order topic, all delivering to one URL with one secret: the
config's ``webhook_secret`` when it gives one, else a new random one kept in the state store (never
printed). Installing again first removes the shop's ordersync webhooks to that URL, so a webhook
WooCommerce disabled after failed deliveries is replaced by an active one. Webhooks ordersync did not
create (another name) are left alone.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from ordersync.config import HttpSettings, WooCommerceShop
from ordersync.errors import ConfigError
from ordersync.http import HttpPolicy
from ordersync.platforms.woocommerce.client import open_client
from ordersync.state import webhooks
from ordersync.state.store import StateStore
from ordersync.webhooks.receiver import ORDER_TOPICS

NAME = "ordersync"
TOPICS = sorted(ORDER_TOPICS)


@dataclass(frozen=True)
class ShopWebhook:
    id: int
    name: str
    topic: str
    status: str
    delivery_url: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> ShopWebhook:
        return cls(
            int(data["id"]),
            str(data.get("name") or ""),
            str(data.get("topic") or ""),
            str(data.get("status") or ""),
            str(data.get("delivery_url") or ""),
        )

    @property
    def ours(self) -> bool:
        return self.name.startswith(NAME)


def _check(shop: WooCommerceShop) -> None:
    if shop.api_version != "v3":
        raise ConfigError(f"shop {shop.name!r}: webhooks are registered through REST v3 (api_version: v3)")


async def list_webhooks(
    shop: WooCommerceShop, http: HttpSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> list[ShopWebhook]:
    _check(shop)
    async with open_client(shop, HttpPolicy(http, shop=shop.name), transport=transport) as client:
        found: list[ShopWebhook] = []
        page = 1
        while True:
            data = (await client.send("GET", "/webhooks", params={"per_page": 100, "page": page})).data
            if not isinstance(data, list):
                raise ConfigError(f"shop {shop.name!r}: GET /webhooks did not answer a list")
            found += [ShopWebhook.of(d) for d in data if isinstance(d, dict)]
            if len(data) < 100:
                return found
            page += 1


def _ours(found: list[ShopWebhook], url: str | None) -> list[ShopWebhook]:
    """ordersync's webhooks among ``found`` (to ``url`` only, when given)."""
    return [w for w in found if w.ours and (url is None or w.delivery_url == url)]


def shop_status(found: list[ShopWebhook], url: str | None = None) -> str | None:
    """One word for the shop's ordersync webhooks: ``active`` when every topic is, else the worst."""
    ours = _ours(found, url)
    if not ours:
        return "missing"
    statuses = {w.status for w in ours}
    for worst in ("disabled", "paused"):
        if worst in statuses:
            return worst
    return "active" if {w.topic for w in ours} >= set(TOPICS) else "incomplete"


async def remove(
    shop: WooCommerceShop,
    http: HttpSettings,
    store: StateStore,
    *,
    url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[ShopWebhook]:
    """Delete the shop's ordersync webhooks (to ``url`` only, when given)."""
    found = await list_webhooks(shop, http, transport=transport)
    doomed = _ours(found, url)
    async with open_client(shop, HttpPolicy(http, shop=shop.name), transport=transport) as client:
        for webhook in doomed:
            await client.send("DELETE", f"/webhooks/{webhook.id}", params={"force": "true"})
    if url is None or any(w.delivery_url == url for w in doomed):
        webhooks.forget(store, shop.name)
    return doomed


async def install(
    shop: WooCommerceShop,
    http: HttpSettings,
    store: StateStore,
    url: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[ShopWebhook]:
    """One active webhook per order topic to ``url``; the secret from the config or a new one."""
    _check(shop)
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"--url {url!r}: give the address WooCommerce will post to (https://...)")
    await remove(shop, http, store, url=url, transport=transport)
    secret = shop.webhook_secret.get_secret_value() if shop.webhook_secret else secrets.token_urlsafe(32)
    # Kept before any webhook exists, so none is ever unverifiable; a secret the config gives stays in
    # the config only (the store notes the installation with "").
    webhooks.save_secret(store, shop.name, "" if shop.webhook_secret else secret, url)
    created = []
    async with open_client(shop, HttpPolicy(http, shop=shop.name), transport=transport) as client:
        for topic in TOPICS:
            body = {
                "name": f"{NAME} {topic}",
                "topic": topic,
                "delivery_url": url,
                "secret": secret,
                "status": "active",
            }
            # Sent once: a retried POST whose answer was lost would register a second webhook.
            created.append(ShopWebhook.of((await client.send("POST", "/webhooks", body, retry=False)).data))
    return created
