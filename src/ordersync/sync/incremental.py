"""One incremental run of one shop (``ordersync sync --once`` and each daemon tick).

WooCommerce lists what changed since its cursor (``woocommerce_changes``). WebCommander has no
modified-since filter, so its run is a scan of the whole listing that hashes each order and maps only
new or changed ones; orders that left the listing are marked. A shop with no finished backfill gets
one first (resumed if one was cut short), since an incremental run needs somewhere to start from.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import UTC, datetime

import httpx
import structlog

from ordersync.config import Settings, ShopConfig, WebCommanderShop
from ordersync.mirror.store import Mirror
from ordersync.state import records
from ordersync.state.store import StateStore
from ordersync.sync.backfill import BACKFILL, ORDERS, StateKeeper, backfill_shop
from ordersync.sync.pipeline import ProgressCallback, RunStats, load_pages
from ordersync.sync.projection import Projection
from ordersync.sync.runlog import recorded_run
from ordersync.sync.sources import WooCommerceSource, open_source, record_dimensions
from ordersync.sync.woocommerce_changes import WooCommerceChanges

log = structlog.get_logger("ordersync.sync")


async def sync_shop(
    shop: ShopConfig,
    settings: Settings,
    mirror: Mirror,
    store: StateStore,
    *,
    progress: ProgressCallback | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    pool: Executor | None = None,
    only: list[str] | None = None,
) -> RunStats:
    """Bring the mirror up to date with the shop; the cursor moves only after the mirror has the data.

    ``only``: just these WooCommerce orders (a webhook named them), read through the API with their
    refunds and notes, mapped and written as a poll would; the cursor stays, so the next poll still
    lists everything changed since it."""
    kwargs = {"progress": progress, "transport": transport, "pool": pool, "store": store}
    if isinstance(shop, WebCommanderShop):
        return await backfill_shop(shop, settings, mirror, kind="sync", **kwargs)  # type: ignore[arg-type]
    cursor = await asyncio.to_thread(records.get_cursor, store, shop.name, ORDERS)
    checkpoint = await asyncio.to_thread(records.get_cursor, store, shop.name, BACKFILL)
    cut_short = (
        checkpoint is not None
        and not checkpoint.get("done")
        and not (checkpoint.get("fingerprint") or {}).get("since")  # a `--since` sample is not resumed here
    )
    projection = await asyncio.to_thread(Projection.plan, store, mirror, "woocommerce", shop.name)
    if cursor is not None and not projection.trusted:
        # The cursor says what changed since the last run, but this mirror does not hold every version
        # before it (deleted, replaced, restored from a copy, a refill cut short): changes alone would
        # leave it holding a fraction of the shop, and a cut-short backfill's checkpoint belongs to the
        # mirror before. From the start.
        log.warning("sync.mirror_behind_state", shop=shop.name, mirror=str(mirror.path), action="backfill")
        return await backfill_shop(shop, settings, mirror, restart=True, **kwargs)  # type: ignore[arg-type]
    if cursor is None or cut_short:
        log.info("sync.needs_backfill", shop=shop.name, resuming=checkpoint is not None)
        return await backfill_shop(shop, settings, mirror, **kwargs)  # type: ignore[arg-type]
    stats = RunStats(shop=shop.name, kind="webhook" if only else "sync")
    async with recorded_run(store, stats, mirror):
        await record_dimensions(mirror, shop, settings.sync.routes)
        run_start = datetime.now(UTC)
        async with open_source(shop, settings.http, transport=transport) as (source, policy):
            assert isinstance(source, WooCommerceSource)
            changes = WooCommerceChanges(source, cursor, store=store, run_start=run_start)
            keeper = await asyncio.to_thread(
                StateKeeper, store, shop, source.platform.value, None, mirror, projection
            )
            try:
                # Usually a few orders: without a pool they are mapped here, which costs less than
                # starting worker processes for them.
                await load_pages(
                    changes.targeted(only) if only else changes.pages(),
                    source,
                    shop,
                    settings,
                    mirror,
                    stats,
                    progress=progress,
                    pool=pool,
                    on_batch=keeper,
                    projection=projection,
                )
            finally:
                stats.retries = policy.retries
                stats.details |= changes.details | {
                    "requests": policy.requests,
                    "detail_concurrency": source.gate.report(),
                }
            if not only:
                moved = changes.next_cursor()
                await asyncio.to_thread(records.set_cursor, store, shop.name, ORDERS, moved)
                stats.details["cursor"] = moved["modified"]
    return stats
