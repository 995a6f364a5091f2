"""Offset pagination over ``GET orders``, fetched concurrently once the total is known.

The first page tells the total; the rest are requested through a sliding window of ``concurrency``
requests and yielded in offset order, so at most ``concurrency`` pages are held at once however large
the shop is. When the total grows during the run (orders keep arriving), the window keeps going to
the new end.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace

import structlog

from ordersync.aio import cancel_and_wait
from ordersync.platforms.webcommander.client import OrdersPage, WebCommanderClient

log = structlog.get_logger("ordersync.webcommander")


async def iter_order_pages(
    client: WebCommanderClient,
    *,
    page_size: int,
    concurrency: int,
    limit: int | None = None,
    start_offset: int = 0,
    keep_orders: bool = True,
) -> AsyncIterator[OrdersPage]:
    """Yield pages in order; ``limit`` stops after that many orders (the last page is cut to fit)."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    first = await client.orders_page(start_offset, page_size, keep_orders=keep_orders)
    total = first.total
    wanted = total if limit is None else min(total, start_offset + limit)
    yield _cut(first, wanted)
    if not first.count:
        return
    next_offset = start_offset + page_size
    window: deque[asyncio.Task[OrdersPage]] = deque()
    try:
        while True:
            while len(window) < concurrency and next_offset < wanted:
                window.append(
                    asyncio.create_task(client.orders_page(next_offset, page_size, keep_orders=keep_orders))
                )
                next_offset += page_size
            if not window:
                return
            page = await window.popleft()
            if limit is None and page.total > total:
                # New orders arrived since the plan was made: keep going to the new end.
                log.info("webcommander.total_grew", before=total, after=page.total)
                total = wanted = page.total
            yield _cut(page, wanted)
            if not page.count:
                # Orders vanished under us; nothing past an empty page can be relied on.
                log.warning("webcommander.short_listing", offset=page.offset, total=page.total)
                return
    finally:
        await cancel_and_wait(window)


def _cut(page: OrdersPage, wanted: int) -> OrdersPage:
    room = max(wanted - page.offset, 0)
    if room >= page.count:
        return page
    return replace(page, orders=page.orders[:room], count=room)
