"""Page-number pagination over the order list, fetched concurrently once the page count is known,
and the per-order refunds and notes that the list does not carry.

Page 1 tells ``X-WP-TotalPages`` (``X-WC-TotalPages`` on the legacy API); the other pages go through a
sliding window of ``concurrency`` requests and come out in page order. When a later page reports more
pages (orders arriving during the run), the window goes on to the new last page. A page past the end is
``200 []`` on real shops and ends the run. A shop that sends no total headers (a proxy stripped them)
is read one page at a time until a short page.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import orjson
import structlog

from ordersync.aio import cancel_and_wait
from ordersync.concurrency import AdaptiveLimit, slot
from ordersync.errors import NotFoundError
from ordersync.platforms.woocommerce.client import ListPage, OrderFilters, WooCommerceClient

log = structlog.get_logger("ordersync.woocommerce")

T = TypeVar("T")


async def iter_order_pages(
    client: WooCommerceClient,
    *,
    per_page: int,
    concurrency: int,
    filters: OrderFilters = OrderFilters(),
    limit: int | None = None,
    start_page: int = 1,
    keep_orders: bool = True,
) -> AsyncIterator[ListPage]:
    """Yield pages in order from ``start_page``; ``limit`` stops after that many orders (the last page
    is cut to fit). Without ``keep_orders`` pages carry their bytes, ids and refund marks only."""
    if not 1 <= per_page <= 100:
        raise ValueError("per_page must be between 1 and 100 (WooCommerce refuses more)")
    budget = _Budget(limit, start_page)
    first = await client.orders_page(start_page, per_page, filters, keep_orders=keep_orders)
    yield budget.cut(first)
    if not first.count or budget.spent:
        return
    if first.total_pages is None:
        log.warning("woocommerce.no_total_headers", url=first.url)
        page = first
        while page.count >= per_page and not budget.spent:
            page = await client.orders_page(page.page + 1, per_page, filters, keep_orders=keep_orders)
            if not page.count:
                return
            yield budget.cut(page)
        return
    last = first.total_pages
    next_page = start_page + 1
    window: deque[asyncio.Task[ListPage]] = deque()
    try:
        while True:
            while len(window) < concurrency and next_page <= last and not budget.planned(next_page, per_page):
                window.append(
                    asyncio.create_task(
                        client.orders_page(next_page, per_page, filters, keep_orders=keep_orders)
                    )
                )
                next_page += 1
            if not window:
                return
            page = await window.popleft()
            if page.total_pages is not None and page.total_pages > last:
                log.info("woocommerce.total_pages_grew", before=last, after=page.total_pages)
                last = page.total_pages
            if not page.count:
                log.info("woocommerce.past_end", page=page.page, total_pages=page.total_pages)
                return
            yield budget.cut(page)
            if budget.spent:
                return
    finally:
        await cancel_and_wait(window)


class _Budget:
    """Counts orders handed out against ``--limit``."""

    def __init__(self, limit: int | None, start_page: int = 1):
        self.limit = limit
        self.start_page = start_page
        self.given = 0

    @property
    def spent(self) -> bool:
        return self.limit is not None and self.given >= self.limit

    def planned(self, page: int, per_page: int) -> bool:
        """True when pages before ``page`` already hold the whole limit."""
        return self.limit is not None and (page - self.start_page) * per_page >= self.limit

    def cut(self, page: ListPage) -> ListPage:
        if self.limit is not None and self.given + page.count > self.limit:
            room = max(self.limit - self.given, 0)
            page = replace(
                page,
                orders=page.orders[:room],
                count=room,
                ids=page.ids[:room],
                refunded=page.refunded[:room],
            )
        self.given += page.count
        return page


@dataclass(frozen=True)
class PageWithDetails:
    """A list page and, per order id, what the list lacks: ``_refunds`` and ``_notes``, as JSON bytes
    (``{"<id>": {"_refunds": [...], "_notes": [...]}}``): the mapper reads them merged into the order,
    ``raw_orders`` keeps them in their own column."""

    page: ListPage
    attachments: bytes | None


def needs_refunds(lists_refund: bool, version: str) -> bool:
    """v3 orders summarise their refunds, so only those that list one are asked; the legacy order
    says nothing of refunds (a partial refund leaves no trace in it), so every order is."""
    return lists_refund if version == "v3" else True


async def fetch_details(
    client: WooCommerceClient,
    page: ListPage,
    *,
    refunds: bool,
    notes: bool,
    limiter: asyncio.Semaphore | AdaptiveLimit,
) -> PageWithDetails:
    """Refunds and notes for the orders of one page, ``limiter`` bounding requests across pages."""
    if not (refunds or notes) or not page.count:
        return PageWithDetails(page, None)

    async def bounded(call: Callable[[], Awaitable[T]]) -> T | None:
        async with slot(limiter):
            try:
                return await call()
            except NotFoundError as exc:
                # Deleted between the list and this request: the order maps from the list alone
                # (refund amounts from its summary); the next run sees what became of it.
                log.warning("woocommerce.detail_gone", url=exc.url, status=exc.status)
                return None

    jobs: list[tuple[str, str, asyncio.Task[list[dict[str, Any]] | None]]] = []
    for key, lists_refund in zip(page.ids[: page.count], page.refunded, strict=False):
        if key is None:
            continue  # the mapper quarantines it
        if refunds and needs_refunds(lists_refund, client.version):
            jobs.append((key, "_refunds", asyncio.create_task(bounded(lambda i=key: client.refunds(i)))))
        if notes:
            jobs.append((key, "_notes", asyncio.create_task(bounded(lambda i=key: client.notes(i)))))
    try:
        # gather raises the first error itself (a TaskGroup would wrap it in an ExceptionGroup).
        await asyncio.gather(*(task for _, _, task in jobs))
    except BaseException:
        await cancel_and_wait(task for _, _, task in jobs)
        raise
    attached: dict[str, dict[str, Any]] = {}
    for key, field, task in jobs:
        found = task.result()
        if found is not None:
            attached.setdefault(key, {})[field] = found
    return PageWithDetails(page, orjson.dumps(attached) if attached else None)
