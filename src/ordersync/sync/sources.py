"""What a platform contributes to a run: a stream of raw order pages and the name of its mapping.

This is the only place that knows which platform package serves which shop; the pipeline above it
sees pages of raw dicts and canonical orders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import httpx

from ordersync.config import HttpSettings, ShopConfig, WebCommanderShop
from ordersync.http import HttpPolicy
from ordersync.models import Platform


@dataclass(frozen=True)
class RawPage:
    """A page as received: ``body`` is the bytes a worker parses, of which only the first ``count``
    orders count (a ``--limit`` may cut a page)."""

    source_url: str
    total: int
    count: int
    body: bytes


class Source(Protocol):
    platform: Platform
    mapping: str
    orders_key: str | None

    def pages(self, *, limit: int | None) -> AsyncIterator[RawPage]: ...


class WebCommanderSource:
    platform = Platform.WEBCOMMANDER
    mapping = "webcommander"
    orders_key = "orders"

    def __init__(
        self, shop: WebCommanderShop, policy: HttpPolicy, transport: httpx.AsyncBaseTransport | None
    ):
        from ordersync.platforms.webcommander.client import WebCommanderClient

        self.shop = shop
        self.client = WebCommanderClient(shop, policy, transport=transport)

    async def pages(self, *, limit: int | None) -> AsyncIterator[RawPage]:
        from ordersync.platforms.webcommander.extract import iter_order_pages

        async for page in iter_order_pages(
            self.client,
            page_size=self.shop.page_size,
            concurrency=self.shop.concurrency,
            limit=limit,
            keep_orders=False,
        ):
            yield RawPage(source_url=page.url, total=page.total, count=page.count, body=page.body)


@asynccontextmanager
async def open_source(
    shop: ShopConfig,
    http: HttpSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[tuple[Source, HttpPolicy]]:
    policy = HttpPolicy(http, shop=shop.name)
    if isinstance(shop, WebCommanderShop):
        source = WebCommanderSource(shop, policy, transport)
        try:
            yield source, policy
        finally:
            await source.client.aclose()
        return
    raise NotImplementedError(f"platform {shop.platform!r} has no source yet")  # pragma: no cover
