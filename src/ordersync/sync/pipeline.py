"""Raw pages in, canonical orders and quarantined records out to the mirror: the engine of every run.

Three stages overlap: the event loop fetches pages (a bounded window), worker processes map them into
Arrow tables (``pagework.map_page``), and a thread writes batches of whole pages into DuckDB (one
write in flight). A page is mapped completely before anything of it is written and batches hold whole
pages only, so the mirror never holds part of a page. Results are taken in page order, so a failure
leaves the mirror with every page before it and nothing after; ``on_batch`` hears of each batch once
DuckDB has committed it, which is when a checkpoint may move past its pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import structlog

from ordersync.config import Settings, ShopConfig
from ordersync.mirror.batch import Batch, OrderKey, quarantine_table
from ordersync.mirror.store import Mirror
from ordersync.sync import spool
from ordersync.sync.pagework import PageJob, PageResult, map_pages, warm_up, worker_init
from ordersync.sync.prefilter import Prefilter
from ordersync.sync.projection import Projection
from ordersync.sync.sources import RawPage, Source
from ordersync.sync.versions import version_rows

log = structlog.get_logger("ordersync.sync")

ProgressCallback = Callable[[int, int], None]
"""Called after each page with (orders in the page, the shop's total as last reported)."""


@dataclass
class RunStats:
    shop: str
    kind: str = "backfill"
    pages: int = 0
    fetched: int = 0
    loaded: int = 0
    unchanged: int = 0
    quarantined: int = 0
    skipped: int = 0
    mapped: int = 0
    """Orders handed to the mapper: the others were skipped as unchanged before mapping."""
    retries: int = 0
    seconds: float = 0.0
    run_id: int | None = None
    """The run's id in the state store's history (None without a store): what the mirror's rows carry."""
    details: dict[str, Any] = field(default_factory=dict)
    """What else a run measured (resume point, requests, notes re-read); kept in the run history.
    Counts are the work done: a run that resumed after an outage counts what it read again."""
    incomplete: str | None = None
    """Why the run cannot prove it read everything: it then ends ``incomplete``, never ``ok``."""

    @property
    def orders_per_second(self) -> float:
        return self.fetched / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class BatchDone:
    """A batch DuckDB has committed: where the source may resume, what was quarantined, what loaded,
    and (with a projection) the batch's number and its orders' versions for the state store."""

    resume: int | None
    quarantine: pa.Table
    keys: list[OrderKey]
    seq: int | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)


BatchCallback = Callable[[BatchDone], None]


def mapping_pool(workers: int, mappings: Iterable[str] = ()) -> Executor | None:
    """Worker processes for mapping; spawned, not forked, because the caller may run threads.

    A spawned worker takes a while to start (a fresh interpreter importing the mapping stack), so each
    is started now and compiles ``mappings`` while the run's first requests are on their way."""
    if workers <= 0:
        return None
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=worker_init,
        initargs=(os.getpid(),),
    )
    for _ in range(workers):
        pool.submit(warm_up, tuple(mappings))
    return pool


@dataclass
class _Mapped:
    result: PageResult
    resume: int | None
    fresh: bool
    """Every order of the page is new to the mirror (the run knows the mirror's orders), so it is
    inserted without looking for rows to replace."""


class _Writer:
    """Gathers mapped pages into batches and writes them in a thread, one write at a time.

    A batch is written once it holds ``batch_bytes`` of Arrow data or ``batch_orders`` orders, so a
    write's fixed costs are spread over as much as memory allows, whatever the orders weigh.
    A failed write (or checkpoint) stops all later writes: a later batch committed and checkpointed
    after a lost one would move the checkpoint past orders the mirror never got.
    """

    def __init__(
        self,
        mirror: Mirror,
        stats: RunStats,
        batch_orders: int,
        batch_bytes: int,
        on_batch: BatchCallback | None,
        projection: Projection | None = None,
    ):
        self.mirror = mirror
        self.projection = projection
        self.stats = stats
        self.batch_orders = batch_orders
        self.batch_bytes = batch_bytes
        self.on_batch = on_batch
        self.batch = Batch()
        self.seen_since_flush = 0
        self.resume: int | None = None
        self.quarantine: list[pa.Table] = []
        self.failed: BaseException | None = None
        self._writing: asyncio.Task[tuple[int, int]] | None = None
        self.first_written = False
        """The first batch is written as soon as it holds a page, so a run makes its first checkpoint
        (and a restarted process its first progress) within moments of the first page."""

    async def add(self, mapped: _Mapped) -> None:
        if self.failed is not None:
            return
        result = mapped.result
        if self.batch.keys.intersection(result.keys):
            await self.flush()  # the page repeats an order of this batch: write the batch first
        self.batch.add_tables(result.tables, result.quarantine, result.keys, fresh=mapped.fresh)
        if result.quarantine.num_rows:
            self.quarantine.append(result.quarantine)
        self.seen_since_flush += result.fetched
        self.resume = mapped.resume
        # Unchanged pages write nothing, but still move the checkpoint now and then.
        if (
            not self.first_written
            or len(self.batch) >= self.batch_orders
            or self.batch.nbytes >= self.batch_bytes
            or self.seen_since_flush >= min(10 * self.batch_orders, _UNCHANGED_CHECKPOINT)
        ):
            self.first_written = True
            await self.flush()

    async def flush(self) -> None:
        await self.wait()
        if self.failed is None and (len(self.batch) or self.seen_since_flush):
            done = BatchDone(
                resume=self.resume,
                quarantine=pa.concat_tables(self.quarantine)
                if self.quarantine
                else quarantine_table([], _epoch()),
                keys=list(self.batch.keys),
            )
            batch, self.batch = self.batch, Batch()
            self.quarantine, self.seen_since_flush = [], 0
            self._writing = asyncio.create_task(asyncio.to_thread(self._write, batch, done))

    def _write(self, batch: Batch, done: BatchDone) -> tuple[int, int]:
        written = unchanged = 0
        if len(batch):
            numbered = None
            if self.projection is not None:
                seq = self.projection.next_seq()
                numbered = self.projection.numbered(seq)
                done = replace(done, seq=seq, versions=version_rows(batch.tables(_epoch())[0]))
            result = self.mirror.write(batch, run_id=self.stats.run_id, numbered=numbered)
            written, unchanged = result.written, result.unchanged
        if self.on_batch is not None:
            self.on_batch(done)
        return written, unchanged

    async def wait(self) -> None:
        """The write in flight, to its end: a thread cannot be cancelled, so a cancelled run still
        waits for it (the batch commits and its checkpoint moves) before the session closes."""
        if self._writing is None:
            return
        task = self._writing
        try:
            try:
                written, unchanged = await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():
                    with contextlib.suppress(BaseException):
                        await task
                raise
        except asyncio.CancelledError:
            self._writing = None
            raise
        except BaseException as exc:
            self._writing = None
            self.failed = exc
            raise
        self._writing = None
        self.stats.loaded += written  # counted here, on the loop, not in the writer thread
        self.stats.unchanged += unchanged


JOB_ORDERS = 200
"""Orders a worker's job holds at least (consecutive pages together): a job's fixed costs (its
tables, spool streams and pickles) were about a tenth of a worker's time with pages of 50."""

_UNCHANGED_CHECKPOINT = 5_000
"""Orders seen (unchanged ones count) after which the checkpoint moves even if nothing was written."""


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)


async def load_pages(
    pages: AsyncIterator[RawPage],
    source: Source,
    shop: ShopConfig,
    settings: Settings,
    mirror: Mirror,
    stats: RunStats,
    *,
    since: datetime | None = None,
    progress: ProgressCallback | None = None,
    pool: Executor | None = None,
    prefilter: Prefilter | None = None,
    on_batch: BatchCallback | None = None,
    projection: Projection | None = None,
) -> None:
    """Map and write every page of ``pages``; on a failure, the pages before it are still written.

    With a ``prefilter`` (the known content hashes) the workers skip unchanged orders before parsing
    them, and pages whose orders are all new to the mirror are inserted without a look for old rows.
    With a ``projection`` each batch is numbered and its versions go to ``on_batch``."""
    loop = asyncio.get_running_loop()
    writer = _Writer(
        mirror, stats, settings.mirror.batch_orders, settings.mirror.batch_bytes, on_batch, projection
    )
    in_flight: deque[tuple[asyncio.Future[PageResult], int | None]] = deque()
    depth = max(2, 2 * settings.workers)

    def absorb(result: PageResult) -> bool:
        stats.pages += result.pages
        stats.fetched += result.fetched
        stats.unchanged += result.unchanged
        stats.mapped += result.fetched - result.unchanged
        stats.skipped += result.skipped
        stats.quarantined += len(result.quarantined)
        for record_id, path, reason in result.quarantined:
            log.warning("order.quarantined", shop=shop.name, record_id=record_id, path=path, reason=reason)
        return prefilter.absorb(result) if prefilter is not None else False

    async def take_oldest() -> None:
        future, resume = in_flight[0]
        result = await future
        in_flight.popleft()
        result.load()
        fresh = absorb(result)
        await writer.add(_Mapped(result, resume, fresh))

    # Spawned workers take a while to start (a fresh interpreter importing the mapping stack): the
    # first page is mapped here, so the first batch, and with it the first checkpoint, does not wait.
    first_mapped = False

    def submit(jobs: tuple[PageJob, ...], folder: str) -> asyncio.Future[PageResult]:
        nonlocal first_mapped
        if pool is not None and first_mapped:
            # The pages' bytes and their tables go through shared memory; only names are pickled.
            jobs = tuple(
                replace(job, body=b"", body_path=spool.put(folder, job.body), spool=folder) for job in jobs
            )
            return loop.run_in_executor(pool, map_pages, jobs)
        first_mapped = True
        future: asyncio.Future[PageResult] = loop.create_future()
        future.set_result(map_pages(jobs))
        return future

    mirror.path.parent.mkdir(parents=True, exist_ok=True)
    session = mirror.session()
    await asyncio.to_thread(session.__enter__)
    try:
        await asyncio.to_thread(mirror.ensure_schema)
        with spool.spool_folder() as folder:
            # Small pages travel to a worker together (a job of at least JOB_ORDERS orders).
            group: list[PageJob] = []
            grouped = 0
            group_resume: Any = None

            def send_group() -> None:
                nonlocal group, grouped
                if group:
                    in_flight.append((submit(tuple(group), folder), group_resume))
                    group, grouped = [], 0

            # The shop's country and state lists, as the mapping reads them; the same for every page.
            country_codes = tuple(shop.country_codes.items())
            state_codes = tuple(shop.state_codes.items())
            try:
                async for page in pages:
                    job = PageJob(
                        body=page.body,
                        source_url=page.source_url,
                        platform=source.platform,
                        shop=shop.name,
                        timezone=shop.timezone,
                        currency=shop.currency,
                        country_codes=country_codes,
                        state_codes=state_codes,
                        mapping=source.mapping,
                        orders_key=source.orders_key,
                        take=page.count,
                        since=since,
                        attachments=page.attachments,
                        ids=page.ids,
                        known=prefilter.hashes(page.ids[: page.count]) if prefilter is not None else None,
                    )
                    if pool is None or not first_mapped:
                        in_flight.append((submit((job,), folder), page.resume))
                    else:
                        group.append(job)
                        grouped += page.count
                        group_resume = page.resume
                        if grouped >= JOB_ORDERS:
                            send_group()
                    if progress is not None:
                        progress(page.count, page.total)
                    while len(in_flight) > depth:
                        await take_oldest()
                send_group()
                while in_flight:
                    await take_oldest()
                await writer.flush()
                await writer.wait()
            except asyncio.CancelledError:
                # Stopping (SIGTERM): keep what is already mapped, abandon the rest; the checkpoint has
                # not moved past it, so the next run reads it again.
                with contextlib.suppress(Exception):
                    while in_flight and in_flight[0][0].done() and not in_flight[0][0].cancelled():
                        await take_oldest()
                    await writer.flush()
                with contextlib.suppress(Exception):
                    await writer.wait()
                raise
            except Exception:
                # The pages read before the failure are whole and come before it: keep them (unless a
                # write failed: then nothing after the lost batch may be written).
                with contextlib.suppress(Exception):
                    send_group()
                    while in_flight:
                        await take_oldest()
                    await writer.flush()
                with contextlib.suppress(Exception):
                    await writer.wait()
                raise
            finally:
                for future, _ in in_flight:
                    future.cancel()
    finally:
        await asyncio.to_thread(session.__exit__, None, None, None)
