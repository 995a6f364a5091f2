"""Full backfill of one shop: pages in, canonical orders and quarantined records out to the mirror.

Three stages overlap: the event loop fetches pages (a bounded window), worker processes map them into
Arrow tables (``pagework.map_page``), and a thread writes batches of whole pages into DuckDB (one
write in flight). A page is mapped completely before anything of it is written and batches hold whole
pages only, so the mirror never holds part of a page. Results are taken in page order, so a failure
leaves the mirror with every page before it and nothing after.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog

from ordersync.config import Settings, ShopConfig
from ordersync.mirror.batch import Batch
from ordersync.mirror.store import Mirror
from ordersync.sync.pagework import PageJob, PageResult, map_page, relax_gc
from ordersync.sync.sources import open_source

log = structlog.get_logger("ordersync.backfill")

ProgressCallback = Callable[[int, int], None]
"""Called after each page with (orders in the page, the shop's total as last reported)."""


@dataclass
class BackfillStats:
    shop: str
    pages: int = 0
    fetched: int = 0
    loaded: int = 0
    unchanged: int = 0
    quarantined: int = 0
    skipped: int = 0
    retries: int = 0
    seconds: float = 0.0

    @property
    def orders_per_second(self) -> float:
        return self.fetched / self.seconds if self.seconds else 0.0


def mapping_pool(workers: int) -> Executor | None:
    """Worker processes for mapping; spawned, not forked, because the caller may run threads."""
    if workers <= 0:
        return None
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=relax_gc
    )


class _Writer:
    """Gathers mapped pages into batches and writes them in a thread, one write at a time."""

    def __init__(self, mirror: Mirror, stats: BackfillStats, batch_orders: int):
        self.mirror = mirror
        self.stats = stats
        self.batch_orders = batch_orders
        self.batch = Batch()
        self._writing: asyncio.Task[None] | None = None

    async def add(self, result: PageResult) -> None:
        if self.batch.keys.intersection(result.keys):
            await self.flush()  # the page repeats an order of this batch: write the batch first
        self.batch.add_tables(result.tables, result.quarantine, result.keys)
        if len(self.batch) >= self.batch_orders:
            await self.flush()

    async def flush(self) -> None:
        await self.wait()
        if len(self.batch):
            batch, self.batch = self.batch, Batch()
            self._writing = asyncio.create_task(self._write(batch))

    async def _write(self, batch: Batch) -> None:
        result = await asyncio.to_thread(self.mirror.write, batch)
        self.stats.loaded += result.written
        self.stats.unchanged += result.unchanged

    async def wait(self) -> None:
        if self._writing is not None:
            task, self._writing = self._writing, None
            await task


async def backfill_shop(
    shop: ShopConfig,
    settings: Settings,
    mirror: Mirror,
    *,
    since: datetime | None = None,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    pool: Executor | None = None,
) -> BackfillStats:
    """Mirror every order of one shop; on a failure, the pages before it are still written."""
    stats = BackfillStats(shop=shop.name)
    started = time.perf_counter()
    own_pool = pool is None and settings.workers > 0
    if own_pool:
        pool = mapping_pool(settings.workers)
    # The main process keeps the default GC: it holds few objects, and httpx responses (page bodies)
    # sit in reference cycles that only a collection frees.
    loop = asyncio.get_running_loop()
    writer = _Writer(mirror, stats, settings.mirror.batch_orders)
    in_flight: deque[asyncio.Future[PageResult]] = deque()
    depth = max(2, 2 * settings.workers)

    def absorb(result: PageResult) -> None:
        stats.pages += 1
        stats.fetched += result.fetched
        stats.skipped += result.skipped
        stats.quarantined += len(result.quarantined)
        for record_id, path, reason in result.quarantined:
            log.warning("order.quarantined", shop=shop.name, record_id=record_id, path=path, reason=reason)

    async def take_oldest() -> None:
        result = await in_flight.popleft()
        absorb(result)
        await writer.add(result)

    try:
        async with open_source(shop, settings.http, transport=transport) as (source, policy):
            mirror.path.parent.mkdir(parents=True, exist_ok=True)
            session = mirror.session()
            await asyncio.to_thread(session.__enter__)
            mirror.ensure_schema()
            log.info(
                "backfill.start",
                shop=shop.name,
                platform=source.platform.value,
                limit=limit,
                since=since.isoformat() if since else None,
                workers=settings.workers,
            )
            try:
                async for page in source.pages(limit=limit, since=since):
                    job = PageJob(
                        body=page.body,
                        source_url=page.source_url,
                        platform=source.platform,
                        shop=shop.name,
                        timezone=shop.timezone,
                        currency=shop.currency,
                        mapping=source.mapping,
                        orders_key=source.orders_key,
                        take=page.count,
                        since=since,
                        attachments=page.attachments,
                    )
                    future: Any = (
                        loop.run_in_executor(pool, map_page, job)
                        if pool is not None
                        else loop.create_future()
                    )
                    if pool is None:
                        future.set_result(map_page(job))
                    in_flight.append(future)
                    if progress is not None:
                        progress(page.count, page.total)
                    while len(in_flight) > depth:
                        await take_oldest()
                while in_flight:
                    await take_oldest()
            except Exception:
                # The pages mapped before the failure are whole and come before it: keep them.
                with contextlib.suppress(Exception):
                    while in_flight:
                        await take_oldest()
                raise
            finally:
                stats.retries = policy.retries
                # Pages already mapped before a failure are kept; nothing of a failing page was added.
                for future in in_flight:
                    future.cancel()
                await writer.flush()
                await writer.wait()
                await asyncio.to_thread(session.__exit__, None, None, None)
    finally:
        if own_pool and pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        stats.seconds = time.perf_counter() - started
    log.info(
        "backfill.done",
        shop=shop.name,
        fetched=stats.fetched,
        loaded=stats.loaded,
        unchanged=stats.unchanged,
        quarantined=stats.quarantined,
        skipped=stats.skipped,
        retries=stats.retries,
        seconds=round(stats.seconds, 3),
    )
    return stats
