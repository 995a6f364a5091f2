"""What a platform contributes to a run: a stream of raw order pages and the name of its mapping.

This is the only place that knows which platform package serves which shop; the pipeline above it
sees pages of raw dicts and canonical orders.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from ordersync.aio import cancel_and_wait
from ordersync.concurrency import AdaptiveLimit
from ordersync.config import HttpSettings, Route, ShopConfig, WebCommanderShop, WooCommerceShop
from ordersync.http import HttpPolicy
from ordersync.models import Platform

if TYPE_CHECKING:
    from ordersync.mirror.store import Mirror
    from ordersync.platforms.webcommander.extract import Listing, OrderScan
    from ordersync.platforms.woocommerce.client import ListPage
    from ordersync.platforms.woocommerce.extract import PageWithDetails


@dataclass(frozen=True)
class RawPage:
    """A page as received: ``body`` is the bytes a worker parses, of which only the first ``count``
    orders count (a ``--limit`` may cut a page)."""

    source_url: str
    total: int
    count: int
    body: bytes
    ids: tuple[str | None, ...] = ()
    """Each order's id as paging read it (None for a record without one)."""
    attachments: bytes | None = None
    """Per-order details fetched beside the list (WooCommerce refunds and notes), merged by the worker."""
    resume: Any = None
    """Where a run killed after this page may start again (JSON: a page number, or a WebCommander
    scan position); None for a page that moves no position."""


class Source(Protocol):
    platform: Platform
    mapping: str
    orders_key: str | None

    def pages(
        self, *, limit: int | None, since: datetime | None = None, start: Any = None
    ) -> AsyncIterator[RawPage]:
        """Raw pages; ``since`` may narrow the request where the API can filter (the worker filters
        exactly either way). ``start`` is a page's ``resume`` from an earlier run."""
        ...


def mapping_name(shop: ShopConfig) -> str:
    """The mapping file (``mappings/<name>.yaml``) that reads this shop's orders."""
    if isinstance(shop, WebCommanderShop):
        return "webcommander"
    return f"woocommerce_{shop.api_version}"


def shop_row(shop: ShopConfig) -> dict[str, str]:
    """The shop as the mirror's ``shops`` table describes it: no credentials (the URL loses any user,
    password or query)."""
    url = httpx.URL(shop.base_url)
    base = str(url.copy_with(username=None, password=None, query=None, fragment=None)).rstrip("/")
    if isinstance(shop, WebCommanderShop):
        api = "external-app"
    else:
        api = "wc/v3" if shop.api_version == "v3" else "wc-api/v2"
    return {
        "shop": shop.name,
        "platform": shop.platform,
        "api": api,
        "timezone": shop.timezone,
        "currency": shop.currency,
        "base_url": base,
    }


def product_rows(shop: str, routes: Iterable[Route]) -> list[dict[str, str | None]]:
    """The shop's entries of the routes' product maps, for the mirror's ``product_map``: a route's
    ``products`` (source SKU -> target product id) names the target shop's product by a SKU, and its
    ``product_ids`` (source product id -> target product id) pairs the source's product with one the
    target knows (by the SKU the target's lines give it)."""
    rows: list[dict[str, str | None]] = []
    for route in routes:
        name = f"{route.source}->{route.target}"
        if route.target == shop:
            rows += [
                {
                    "shop": shop,
                    "product_id": pid,
                    "sku": sku,
                    "peer_shop": None,
                    "peer_product_id": None,
                    "route": name,
                }
                for sku, pid in route.products.items()
            ]
        if route.source == shop:
            rows += [
                {
                    "shop": shop,
                    "product_id": pid,
                    "sku": None,
                    "peer_shop": route.target,
                    "peer_product_id": tid,
                    "route": name,
                }
                for pid, tid in route.product_ids.items()
            ]
    return rows


async def record_dimensions(mirror: Mirror, shop: ShopConfig, routes: Iterable[Route]) -> None:
    """The shop's row in ``shops`` and its product-map entries, written at the start of each run."""
    await asyncio.to_thread(mirror.record_shop, shop_row(shop), None, product_rows(shop.name, routes))


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
        self.listing: Listing | None = None
        """How the shop pages, as earlier runs saw it (the caller sets it from the state store)."""
        self.scan: OrderScan | None = None
        """The last ``pages()`` scan, whose report says whether it saw the whole listing."""

    async def pages(
        self, *, limit: int | None, since: datetime | None = None, start: Any = None
    ) -> AsyncIterator[RawPage]:
        """WebCommander has no date filter: every page is read and ``since`` applied while mapping.
        The scan checks itself (``scan.report``): what was read is complete only if it says so."""
        from ordersync.platforms.webcommander.extract import OrderScan

        self.scan = OrderScan(
            self.client,
            page_size=self.shop.page_size,
            concurrency=self.shop.concurrency,
            listing=self.listing,
            limit=limit,
            resume=start,
            max_passes=self.shop.scan_passes,
        )
        async for scanned in self.scan.pages():
            page = scanned.page
            yield RawPage(
                source_url=page.url,
                total=page.total,
                count=page.count,
                body=page.body,
                ids=page.ids,
                resume=scanned.resume,
            )


class WooCommerceSource:
    """Order pages with each order's refunds and notes attached; up to ``concurrency`` pages have their
    details in flight at once, all sharing one adaptive gate of at most ``detail_concurrency`` requests."""

    platform = Platform.WOOCOMMERCE

    def __init__(self, shop: WooCommerceShop, policy: HttpPolicy, transport: httpx.AsyncBaseTransport | None):
        from ordersync.platforms.woocommerce.client import OrderFilters, open_client

        self.shop = shop
        self.client = open_client(shop, policy, transport=transport)
        self.gate = AdaptiveLimit(
            shop.detail_concurrency, retries=lambda: policy.retries, name=f"{shop.name} details"
        )
        """Refund and note requests in flight, adapted to the shop's latency and errors."""
        self.mapping = mapping_name(shop)
        self.orders_key = self.client.orders_key
        # The legacy API sorts by date with no tie-breaker, so orders created in the same second move
        # between pages (recorded: one order listed twice and another never); ids are unique.
        self.filters = OrderFilters(
            statuses=tuple(shop.statuses), orderby="id" if shop.api_version == "v2" else "date"
        )

    async def pages(
        self, *, limit: int | None, since: datetime | None = None, start: Any = None
    ) -> AsyncIterator[RawPage]:
        """Pages in creation order (oldest first), so new orders join the end and a page number stays
        a place to resume."""
        from ordersync.platforms.woocommerce.extract import iter_order_pages

        filters = self.filters
        if since is not None:
            # `after` is exclusive to the second; one second earlier keeps orders created at `since`.
            filters = replace(filters, created_after=since - timedelta(seconds=1))
        lists = iter_order_pages(
            self.client,
            per_page=self.shop.page_size,
            concurrency=self.shop.concurrency,
            filters=filters,
            limit=limit,
            start_page=start or 1,
            keep_orders=False,
        )
        async for page in self.with_details(lists):
            yield page

    async def with_details(self, lists: AsyncIterator[ListPage]) -> AsyncIterator[RawPage]:
        """Each list page with its orders' refunds and notes, pages kept in order; up to
        ``concurrency`` pages have their details in flight at once."""
        from ordersync.platforms.woocommerce.extract import fetch_details

        window: deque[asyncio.Task[PageWithDetails]] = deque()

        def raw(done: PageWithDetails) -> RawPage:
            page = done.page
            total = page.total if page.total is not None else page.count
            return RawPage(
                source_url=page.url,
                total=total,
                count=page.count,
                body=page.body,
                ids=page.ids,
                attachments=done.attachments,
                resume=page.page + 1,
            )

        try:
            async for page in lists:
                window.append(
                    asyncio.create_task(
                        fetch_details(
                            self.client,
                            page,
                            refunds=self.shop.refunds,
                            notes=self.shop.notes == "all",
                            limiter=self.gate,
                        )
                    )
                )
                while len(window) > self.shop.concurrency:
                    yield raw(await _details_of(window.popleft()))
        except _DetailsFailed as failed:
            # This page's details failed: it and every page after it are left out.
            raise failed.error from None
        except Exception:
            # A list page failed: the pages before it are whole, so hand them over before failing.
            while window:
                try:
                    done = await window.popleft()
                except Exception:
                    break
                yield raw(done)
            raise
        else:
            while window:
                yield raw(await window.popleft())
        finally:
            await cancel_and_wait(window)


class _DetailsFailed(Exception):
    """Marks an error of a page's refund or note requests, so it is not mistaken for a list error."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


async def _details_of(task: asyncio.Task[PageWithDetails]) -> PageWithDetails:
    try:
        return await task
    except Exception as exc:
        raise _DetailsFailed(exc) from exc


@asynccontextmanager
async def open_source(
    shop: ShopConfig,
    http: HttpSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    policy: HttpPolicy | None = None,
) -> AsyncIterator[tuple[Source, HttpPolicy]]:
    """A source for one shop; ``policy`` carries one run's retry state and counts across attempts."""
    policy = policy or HttpPolicy(http, shop=shop.name)
    if isinstance(shop, WebCommanderShop):
        source = WebCommanderSource(shop, policy, transport)
        try:
            yield source, policy
        finally:
            await source.client.aclose()
        return
    woo = WooCommerceSource(shop, policy, transport)
    try:
        yield woo, policy
    finally:
        await woo.client.aclose()
