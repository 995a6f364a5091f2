"""Full backfill of one shop, resumable: killed at any point and run again, it starts near where it
stopped instead of from zero.

The checkpoint is the source's position after the last batch DuckDB committed; a resumed run starts
one page before it, in case orders were deleted in between. WooCommerce lists oldest first, so a page
number stays valid. WebCommander may list either way: its scan records a position that holds in both
orders (counted from the stable end when newest first), and a resumed scan is followed by a whole
pass that proves the listing complete. Orders read twice are harmless: the mirror rewrites an order
only when its content changed.

A WebCommander scan that cannot prove it saw the whole listing ends the run ``incomplete``: nothing is
marked gone on its word, and no cursor says the shop is current.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa
import structlog

from ordersync.config import Settings, ShopConfig, WebCommanderShop
from ordersync.errors import BadResponseError, ServerError, TransportError
from ordersync.http import HttpPolicy
from ordersync.mirror.store import Mirror
from ordersync.platforms.webcommander.extract import Listing
from ordersync.state import records
from ordersync.state.store import StateStore
from ordersync.sync.pipeline import (
    BatchDone,
    ProgressCallback,
    RunStats,
    load_pages,
    mapping_pool,
)
from ordersync.sync.prefilter import Prefilter
from ordersync.sync.projection import Projection
from ordersync.sync.runlog import recorded_run
from ordersync.sync.sources import (
    WebCommanderSource,
    WooCommerceSource,
    mapping_name,
    open_source,
    record_dimensions,
)

log = structlog.get_logger("ordersync.backfill")

_OUTAGE = (ServerError, TransportError, BadResponseError)
"""Failures that outlasted the request's retry budget and may still pass: the shop, not our request."""

BackfillStats = RunStats

BACKFILL = "backfill"
"""Cursor stream of a backfill's checkpoint."""
ORDERS = "orders"
"""Cursor stream of WooCommerce's incremental sync: (date_modified_gmt, ids at that edge)."""
SCAN = "scan"
"""Cursor stream of WebCommander's last complete scan."""
LISTING = "listing"
"""Cursor stream of how a WebCommander shop pages (its cap on ``max``, its order), learned by scans."""


def _fingerprint(shop: ShopConfig, since: datetime | None) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: the same listing, cut the same way."""
    listing: dict[str, Any] = {"page_size": shop.page_size, "since": since.isoformat() if since else None}
    if not isinstance(shop, WebCommanderShop):
        listing |= {"api_version": shop.api_version, "statuses": list(shop.statuses)}
    return listing


def quarantine_records(table: pa.Table) -> list[records.Quarantined]:
    """Quarantined records to keep in the state store; one whose payload the mirror left out
    (``mirror.personal_data``) cannot be mapped again from there, so it is not copied."""
    return [
        records.Quarantined(
            platform=row["platform"],
            shop=row["shop"],
            record_id=row["record_id"],
            path=row["path"],
            reason=row["reason"],
            payload=row["payload"],
            content_hash=row["content_hash"],
            source_url=row["source_url"],
        )
        for row in table.to_pylist()
        if row["payload"] is not None
    ]


class StateKeeper:
    """What a run tells the state store as DuckDB commits its batches: the checkpoint, quarantined
    records, and records that now map. Called from the writer thread, one batch at a time."""

    def __init__(
        self,
        store: StateStore,
        shop: ShopConfig,
        platform: str,
        checkpoint: dict[str, Any] | None,
        mirror: Mirror | None = None,
        projection: Projection | None = None,
    ):
        self.store = store
        self.shop = shop
        self.platform = platform
        self.checkpoint = checkpoint
        self.projection = projection
        self.quarantine_held = records.quarantine_count(store, shop.name) > 0
        if not self.quarantine_held and mirror is not None:
            # Records the mirror quarantined before this store existed: the prefilter skips them as
            # unchanged, so the store would never hear of them otherwise.
            held = quarantine_records(mirror.quarantined(platform, shop.name))
            records.record_quarantine(store, held)
            self.quarantine_held = bool(held)

    def __call__(self, done: BatchDone) -> None:
        if done.quarantine.num_rows:
            records.record_quarantine(self.store, quarantine_records(done.quarantine))
            self.quarantine_held = True
        if done.keys and self.quarantine_held:
            records.release_quarantine(self.store, self.platform, self.shop.name, [k[2] for k in done.keys])
        moves = self.checkpoint is not None and done.resume is not None
        if not moves and (done.seq is None or self.projection is None):
            return
        # The versions, the batch's number and the checkpoint in one transaction: a checkpoint past
        # orders whose versions were never recorded would leave routing blind to them.
        with self.store.engine.begin() as connection:
            if done.seq is not None and self.projection is not None:
                self.projection.record(connection, done.seq, done.versions)
            if moves:
                assert self.checkpoint is not None
                self.checkpoint["position"] = done.resume
                records.set_cursor_in(connection, self.shop.name, BACKFILL, self.checkpoint)


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
    store: StateStore | None = None,
    restart: bool = False,
    kind: str = "backfill",
) -> RunStats:
    """Mirror every order of one shop; on a failure, the pages before it are still written.

    With a state store the run is recorded, checkpointed and resumable (a ``limit`` run is a sample
    and is not), quarantined records are kept in the store, and a complete run leaves the cursor the
    incremental sync starts from.
    """
    stats = RunStats(shop=shop.name, kind=kind)
    # One policy for every attempt: its counts are the run's, and a shop that answered once is known
    # to exist (an outage gets the whole retry budget, not the first-contact one).
    policy = HttpPolicy(settings.http, shop=shop.name)
    async with recorded_run(store, stats, mirror):
        await record_dimensions(mirror, shop, settings.sync.routes)
        resumes = settings.http.resumes if store is not None and limit is None else 0
        own: dict[str, Any] = {}
        for resumed in range(resumes + 1):
            try:
                await _backfill(
                    shop,
                    settings,
                    mirror,
                    stats,
                    since,
                    limit,
                    progress,
                    transport,
                    pool,
                    store,
                    restart,
                    policy,
                    own,
                )
                break
            except _OUTAGE as exc:
                # Resumed only from a checkpoint this run wrote or took over: a restart that failed
                # before its first batch leaves an older run's, which must not be taken. Never for
                # an error asking again cannot cure.
                if resumed == resumes or exc.permanent or not _is_own_checkpoint(store, shop, own):
                    raise
                restart = False
                stats.details["outage_resumes"] = resumed + 1
                pause = min(settings.http.backoff_max, settings.http.retry_for)
                log.warning("backfill.outage_resume", shop=shop.name, error=str(exc), pause_s=pause)
                await asyncio.sleep(pause)
    return stats


async def _backfill(
    shop: ShopConfig,
    settings: Settings,
    mirror: Mirror,
    stats: RunStats,
    since: datetime | None,
    limit: int | None,
    progress: ProgressCallback | None,
    transport: httpx.AsyncBaseTransport | None,
    pool: Executor | None,
    store: StateStore | None,
    restart: bool,
    policy: HttpPolicy,
    own: dict[str, Any],
) -> None:
    checkpoint: dict[str, Any] | None = None
    start: int | None = None
    if since is not None or limit is not None:
        stats.details["sample"] = True  # not the whole shop: `status` does not count it as current
    if store is not None and limit is None:
        fingerprint = _fingerprint(shop, since)
        earlier = None if restart else records.get_cursor(store, shop.name, BACKFILL)
        if earlier and not earlier.get("done") and earlier.get("fingerprint") == fingerprint:
            checkpoint = earlier
            start = _step_back(shop, earlier.get("position"))
            stats.details["resumed_from"] = _shown(start)
            log.info("backfill.resume", shop=shop.name, position=earlier.get("position"), start=start)
        else:
            checkpoint = {
                "fingerprint": fingerprint,
                "started_at": datetime.now(UTC).isoformat(),
                "kind": stats.kind,  # a WebCommander sync is a scan checkpointed like a backfill
            }
        checkpoint |= {"done": False}
        own["started_at"] = checkpoint["started_at"]
    own_pool = pool is None and settings.workers > 0
    if own_pool:
        pool = mapping_pool(settings.workers, [mapping_name(shop)])
    try:
        async with open_source(shop, settings.http, transport=transport, policy=policy) as (source, _):
            projection: Projection | None = None
            if store is not None:
                projection = await asyncio.to_thread(
                    Projection.plan, store, mirror, source.platform.value, shop.name
                )
                prefilter = Prefilter(projection.known, fresh_ok=projection.fresh_ok)
            else:  # no state store: the mirror's own hashes are all there is
                prefilter = Prefilter(
                    await asyncio.to_thread(mirror.known_hashes, source.platform.value, shop.name)
                )
            known = prefilter.known
            log.info(
                "backfill.start",
                shop=shop.name,
                platform=source.platform.value,
                limit=limit,
                since=since.isoformat() if since else None,
                start=start,
                known=len(known),
                workers=settings.workers,
            )
            keeper = (
                StateKeeper(store, shop, source.platform.value, checkpoint, mirror, projection)
                if store
                else None
            )
            if isinstance(source, WebCommanderSource) and store is not None:
                remembered = await asyncio.to_thread(records.get_cursor, store, shop.name, LISTING)
                source.listing = Listing.from_json(remembered)
            try:
                await load_pages(
                    source.pages(limit=limit, since=since, start=start),
                    source,
                    shop,
                    settings,
                    mirror,
                    stats,
                    since=since,
                    progress=progress,
                    pool=pool,
                    prefilter=prefilter,
                    on_batch=keeper,
                    projection=projection,
                )
            finally:
                stats.retries = policy.retries  # the run's, across resumed attempts
                stats.details["requests"] = policy.requests
                if isinstance(source, WooCommerceSource):
                    stats.details["detail_concurrency"] = source.gate.report()
            complete = True
            if isinstance(source, WebCommanderSource) and source.scan is not None:
                complete = await asyncio.to_thread(_judge_scan, source, store, stats, mirror, since, limit)
            if store is not None and checkpoint is not None:
                _finish(store, shop, checkpoint, complete=complete and since is None)
            if projection is not None and complete and since is None and limit is None:
                await asyncio.to_thread(projection.complete)
    finally:
        if own_pool and pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _judge_scan(
    source: WebCommanderSource,
    store: StateStore | None,
    stats: RunStats,
    mirror: Mirror,
    since: datetime | None,
    limit: int | None,
) -> bool:
    """What a WebCommander scan proved: remember how the shop pages, mark orders gone only after a
    complete scan of the whole listing, and make a scan that proved nothing an ``incomplete`` run."""
    assert source.scan is not None
    report = source.scan.report
    stats.details["scan"] = report.to_json()
    if "resumed_from" in stats.details and report.passes:
        stats.details["resumed_from"] = report.passes[0].start
    if store is not None:
        records.set_cursor(store, source.shop.name, LISTING, report.listing.to_json())
    if limit is not None:
        return False
    if not report.complete:
        last = report.passes[-1] if report.passes else None
        stats.incomplete = (
            f"could not verify the listing of {source.shop.name} after {len(report.passes)} pass(es): "
            f"{report.unverified} order(s) unverified ({last.problem() if last else 'no page read'}); "
            "nothing was marked missing, and the next run scans again"
        )
        return False
    if since is None:
        gone, back = mirror.mark_presence(source.platform.value, source.shop.name, report.seen)
        stats.details |= {"disappeared": gone, "reappeared": back}
    return True


def _is_own_checkpoint(store: StateStore | None, shop: ShopConfig, own: dict[str, Any]) -> bool:
    """Whether the stored checkpoint is the one this run wrote or took over, with a position."""
    if store is None or "started_at" not in own:
        return False
    current = records.get_cursor(store, shop.name, BACKFILL) or {}
    return current.get("started_at") == own["started_at"] and current.get("position") is not None


def _step_back(shop: ShopConfig, position: Any) -> Any:
    """Where a resumed run starts. WooCommerce: one page before the checkpoint (orders deleted since
    then moved the rest one place up). WebCommander: its scan steps back from the position itself."""
    if position is None:
        return None
    if isinstance(shop, WebCommanderShop):
        return position or None
    position = int(position)
    return max(position - 1, 1) if position > 1 else None


def _shown(start: Any) -> Any:
    """A resume point for the summary: the offset of a WebCommander position, or the page number."""
    if isinstance(start, dict):
        return start.get("offset", 0)
    return start or 0


def _finish(store: StateStore, shop: ShopConfig, checkpoint: dict[str, Any], *, complete: bool) -> None:
    """Close the checkpoint; a backfill of the whole shop also starts the incremental cursor at the
    time its first attempt began (changes after that are the incremental sync's)."""
    finished = datetime.now(UTC)
    checkpoint |= {"done": True, "finished_at": finished.isoformat()}
    records.set_cursor(store, shop.name, BACKFILL, checkpoint)
    if not complete or checkpoint["fingerprint"].get("since"):
        return
    began = checkpoint["started_at"]
    if isinstance(shop, WebCommanderShop):
        records.set_cursor(store, shop.name, SCAN, {"started_at": began, "finished_at": finished.isoformat()})
        return
    current = records.get_cursor(store, shop.name, ORDERS)
    if current is None or current.get("modified", "") < began:
        records.set_cursor(store, shop.name, ORDERS, {"modified": began, "edge": {}})
