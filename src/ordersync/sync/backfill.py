"""Full backfill of one shop: pages in, canonical orders and quarantined records out to the mirror.

A page is mapped completely before anything of it is written, and batches are written between pages
only, so the mirror never holds part of a page. Writes run in a worker thread while the next pages
are fetched and mapped; at most one write is in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
import structlog

from ordersync.config import Settings, ShopConfig
from ordersync.mapping import MappingContext, MappingError, OrderMapper, load_mapping
from ordersync.mirror.batch import Batch, QuarantinedRecord
from ordersync.mirror.store import Mirror
from ordersync.sync.sources import RawPage, open_source

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
    errors: list[str] = field(default_factory=list)

    @property
    def orders_per_second(self) -> float:
        return self.fetched / self.seconds if self.seconds else 0.0


def content_hash(payload: bytes, mapping_version: str) -> str:
    """Changes when the payload or the mapping that reads it changes, so either re-writes the order."""
    return hashlib.blake2b(payload + mapping_version.encode(), digest_size=16).hexdigest()


def _record_id(raw: Any) -> str | None:
    if isinstance(raw, dict) and raw.get("id") is not None:
        return str(raw["id"])
    return None


class _Pipeline:
    def __init__(
        self,
        mirror: Mirror,
        mapper: OrderMapper,
        ctx: MappingContext,
        stats: BackfillStats,
        batch_orders: int,
        since: datetime | None,
    ):
        self.mirror = mirror
        self.mapper = mapper
        self.ctx = ctx
        self.stats = stats
        self.batch_orders = batch_orders
        self.since = since
        self.batch = Batch()
        self._writing: asyncio.Task[None] | None = None

    def add_page(self, page: RawPage) -> None:
        version = self.mapper.version
        for raw in page.orders:
            payload = orjson.dumps(raw)
            digest = content_hash(payload, version)
            try:
                order = self.mapper.map(raw, self.ctx)
            except MappingError as exc:
                self.batch.quarantine(
                    QuarantinedRecord(
                        platform=self.ctx.platform.value,
                        shop=self.ctx.shop,
                        record_id=_record_id(raw),
                        path=exc.path,
                        reason=exc.reason,
                        payload=payload,
                        content_hash=digest,
                        source_url=page.source_url,
                    )
                )
                self.stats.quarantined += 1
                log.warning(
                    "order.quarantined",
                    shop=self.ctx.shop,
                    record_id=_record_id(raw),
                    path=exc.path,
                    reason=exc.reason,
                )
                continue
            if self.since is not None and order.created_at < self.since:
                self.stats.skipped += 1
                continue
            self.batch.add(order, payload, digest, page.source_url)
        self.stats.pages += 1
        self.stats.fetched += len(page.orders)

    async def maybe_flush(self, *, final: bool = False) -> None:
        if len(self.batch) < self.batch_orders and not (final and len(self.batch)):
            if final:
                await self._await_write()
            return
        await self._await_write()
        batch, self.batch = self.batch, Batch()
        self._writing = asyncio.create_task(self._write(batch))
        if final:
            await self._await_write()

    async def _write(self, batch: Batch) -> None:
        result = await asyncio.to_thread(self.mirror.write, batch)
        self.stats.loaded += result.written
        self.stats.unchanged += result.unchanged

    async def _await_write(self) -> None:
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
) -> BackfillStats:
    """Mirror every order of one shop; on a fetch failure, pages already mapped are still written."""
    stats = BackfillStats(shop=shop.name)
    started = time.perf_counter()
    async with open_source(shop, settings.http, transport=transport) as (source, policy):
        mapper = load_mapping(source.mapping)
        ctx = MappingContext(
            platform=source.platform, shop=shop.name, timezone=shop.zone, currency=shop.currency
        )
        mirror.ensure_schema()
        pipeline = _Pipeline(mirror, mapper, ctx, stats, settings.mirror.batch_orders, since)
        log.info(
            "backfill.start",
            shop=shop.name,
            platform=source.platform.value,
            limit=limit,
            since=since.isoformat() if since else None,
        )
        try:
            async for page in source.pages(limit=limit):
                pipeline.add_page(page)
                if progress is not None:
                    progress(len(page.orders), page.total)
                await pipeline.maybe_flush()
        finally:
            # Whole pages mapped before a failure are kept; the failing page was never added.
            await pipeline.maybe_flush(final=True)
            stats.retries = policy.retries
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
