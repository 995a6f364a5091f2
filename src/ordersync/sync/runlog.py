"""Every run leaves a row in the state store's history: when, what came of it, and why it failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import structlog

from ordersync.metrics import RUN_SECONDS, RUNS
from ordersync.mirror.store import Mirror
from ordersync.state import records
from ordersync.state.leases import lost_lease, shop_lease
from ordersync.state.store import StateStore
from ordersync.sync.pipeline import RunStats

log = structlog.get_logger("ordersync.run")


@asynccontextmanager
async def recorded_run(
    store: StateStore | None, stats: RunStats, mirror: Mirror | None = None
) -> AsyncIterator[None]:
    """Times the run into ``stats`` and records it (in the state store, and as lineage in the
    mirror's ``runs`` table when given); a run stopped by SIGTERM is 'abandoned'."""
    async with AsyncExitStack() as stack:
        if store is not None:
            # One run per shop at a time, across processes: ShopBusy before anything is recorded.
            await stack.enter_async_context(shop_lease(store, stats.shop, stats.kind))
        async with _recorded(store, stats, mirror):
            yield


@asynccontextmanager
async def _recorded(store: StateStore | None, stats: RunStats, mirror: Mirror | None) -> AsyncIterator[None]:
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    run_id = None
    if store is not None:
        # This process holds the shop's lease, so a run still marked running was left by a process
        # that died.
        records.abandon_stale_runs(store, stats.shop)
        run_id = records.start_run(store, stats.shop, stats.kind)
        stats.run_id = run_id
    status, error = "failed", None
    try:
        yield
        status = "ok"
        if stats.incomplete:
            status, error = "incomplete", stats.incomplete
    except asyncio.CancelledError as exc:
        status, error = "abandoned", "stopped before the end; the next run starts from the last checkpoint"
        if why := lost_lease(exc):
            status, error = "failed", f"{why}; the next run starts from the last checkpoint"
        raise
    except Exception as exc:
        error = str(exc)
        raise
    finally:
        stats.seconds = time.perf_counter() - started
        details = stats.details | {
            "seconds": round(stats.seconds, 3),
            "retries": stats.retries,
            "mapped": stats.mapped,
        }
        if store is not None and run_id is not None:
            records.finish_run(
                store,
                run_id,
                status=status,
                fetched=stats.fetched,
                loaded=stats.loaded,
                unchanged=stats.unchanged,
                quarantined=stats.quarantined,
                error=error,
                details=details,
            )
        if mirror is not None and run_id is not None:
            _lineage(mirror, stats, run_id, status, error, started_at)
        RUNS.labels(stats.shop, stats.kind, status).inc()
        RUN_SECONDS.labels(stats.shop, stats.kind).observe(stats.seconds)
        (log.error if status == "failed" else log.info)(
            "run.done",
            shop=stats.shop,
            kind=stats.kind,
            status=status,
            error=error,
            fetched=stats.fetched,
            loaded=stats.loaded,
            unchanged=stats.unchanged,
            quarantined=stats.quarantined,
            skipped=stats.skipped,
            **details,
        )


def _lineage(
    mirror: Mirror, stats: RunStats, run_id: int, status: str, error: str | None, started_at: datetime
) -> None:
    """The run's row in the mirror's ``runs`` table; a mirror that cannot take it (held by an analyst)
    costs the lineage row, never the run's outcome."""
    try:
        mirror.record_run(
            {
                "run_id": run_id,
                "shop": stats.shop,
                "kind": stats.kind,
                "status": status,
                "started_at": started_at,
                "finished_at": datetime.now(UTC),
                "fetched": stats.fetched,
                "loaded": stats.loaded,
                "unchanged": stats.unchanged,
                "quarantined": stats.quarantined,
                "error": error,
            }
        )
    except Exception as exc:  # lineage is a convenience; the state store holds the run
        log.warning("mirror.run_not_recorded", shop=stats.shop, run_id=run_id, error=str(exc))
