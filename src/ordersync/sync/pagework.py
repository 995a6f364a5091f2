"""Mapping one page of raw orders into mirror tables: the CPU-bound step, run in worker processes.

A worker gets the page's bytes as received and each order's mirrored content hash (looked up by the
main process from the ids paging read). It splits the page into each order's own bytes, hashes them,
and parses, maps and validates only the orders whose hash changed: an unchanged order costs a hash,
not a parse. What it builds (Arrow tables) goes back through a spool file in shared memory that the
main process maps without copying (``spool.py``); only a small summary is pickled. Mapping is pure,
so a page gives the same tables in any process.
"""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa

from ordersync.mapping import MappingContext, MappingError, OrderMapper, load_mapping
from ordersync.mirror.batch import LoadedOrder, OrderKey, QuarantinedRecord, order_tables, quarantine_table
from ordersync.mirror.columnar import Mapped, NotCanonical, dict_tables, key_of
from ordersync.models import Platform
from ordersync.rawpage import split_records
from ordersync.sync import spool


def relax_gc() -> None:
    """Pages create and drop millions of small objects with no cycles; default GC thresholds make
    CPython rescan live objects so often that collection costs more than the mapping itself."""
    gc.set_threshold(50_000, 50, 100)
    gc.freeze()


def worker_init(parent: int) -> None:
    """Set up a mapping worker: relaxed GC, and an exit when the run that started it (``parent``, named
    by the run itself: a worker still starting when the run died would see its new parent) dies. A run
    killed with SIGKILL cannot shut its pool down, and spawned workers would otherwise live on."""
    relax_gc()
    # Ctrl-C reaches the whole process group and systemd's SIGTERM may too: the run that owns this
    # worker decides when it stops (it records itself and shuts the pool down), not the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def warm_up(mappings: tuple[str, ...]) -> int:
    """Import the mapping stack and compile the mappings, so the first page a worker gets is mapped at
    full speed; submitted to each worker when the pool starts, before the first page is back."""
    for name in mappings:
        load_mapping(name)
    return os.getpid()


@dataclass(frozen=True)
class PageJob:
    body: bytes
    source_url: str
    platform: Platform
    shop: str
    timezone: str
    currency: str
    mapping: str
    orders_key: str | None = "orders"
    take: int | None = None
    since: datetime | None = None
    attachments: bytes | None = None
    """Details fetched beside the list, JSON keyed by order id: ``{"<id>": {"_refunds": [...]}}``."""
    ids: tuple[str | None, ...] = ()
    """Each order's id as paging read it; empty when the caller has none (the worker reads them)."""
    known: tuple[str | None, ...] | None = None
    """Each order's content hash in the mirror, by position (None: not mirrored); an order whose hash
    is unchanged is skipped before it is parsed. None: nothing is skipped."""
    country_codes: tuple[tuple[str, str], ...] = ()
    """The shop's country id -> ISO code (MappingContext.country_codes)."""
    state_codes: tuple[tuple[str, tuple[str, str]], ...] = ()
    spool: str | None = None
    """A folder for the result's tables (shared memory); None returns them in the result itself."""
    body_path: str | None = None
    """Where the page's bytes wait in the spool (``body`` is then empty)."""


@dataclass
class PageResult:
    tables: dict[str, pa.Table]
    quarantine: pa.Table
    keys: list[OrderKey]
    fetched: int = 0
    """Every order of the page, unchanged ones included."""
    unchanged: int = 0
    skipped: int = 0
    quarantined: list[tuple[str | None, str, str]] = field(default_factory=list)
    pages: int = 1
    digests: dict[str, str] = field(default_factory=dict)
    """The new content hash of each order passed on (mapped or quarantined), so that the run skips
    it when a later page lists it again."""
    spooled: spool.Spooled | None = None
    """Where the tables wait when a worker built them: ``load`` maps them in."""

    def load(self) -> PageResult:
        """The tables in this process (mapped from the spool without copying), once."""
        if self.spooled is not None:
            tables = self.spooled.open()
            self.quarantine = tables.pop(spool.QUARANTINE)
            self.tables, self.spooled = tables, None
        return self


def order_digest(payload: Any, details: bytes | None, mapping_version: str) -> str:
    """The order as the shop sent it (its bytes, ``payload`` is any buffer) and the details fetched
    beside it: a new note or refund changes the hash, so the order is rewritten, while ``raw_orders``
    keeps the two apart."""
    digest = hashlib.blake2b(payload, digest_size=16)
    if details:
        digest.update(details)
    digest.update(mapping_version.encode())
    return digest.hexdigest()


def _record_id(raw: Any) -> str | None:
    if isinstance(raw, dict) and raw.get("id") is not None:
        return str(raw["id"])
    return None


def details_of(record_id: str | None, attachments: dict[str, dict[str, Any]] | None) -> dict[str, Any] | None:
    """What was fetched beside this order (refunds, notes); None when nothing was."""
    if not attachments or record_id is None:
        return None
    return attachments.get(record_id) or None


def map_page(job: PageJob) -> PageResult:
    return map_pages((job,))


def map_pages(jobs: tuple[PageJob, ...]) -> PageResult:
    """Several consecutive pages of one shop into one set of tables: small pages (a host that caps a
    page at 50 orders) would otherwise pay a job's fixed costs (tables, spool streams, pickles) each."""
    head = jobs[0]
    mapper = load_mapping(head.mapping)
    ctx = MappingContext(
        platform=head.platform,
        shop=head.shop,
        timezone=ZoneInfo(head.timezone),
        currency=head.currency,
        country_codes=dict(head.country_codes),
        state_codes=dict(head.state_codes),
    )
    now = datetime.now(UTC)
    built: list[_Built] = []
    bad: list[QuarantinedRecord] = []
    result = PageResult(tables={}, quarantine=quarantine_table([], now), keys=[], pages=len(jobs))
    for job in jobs:
        _build_into(job, mapper, ctx, built, bad, result)
    try:
        keys, tables = _columnar(built, mapper, ctx, bad, result, now)
    except NotCanonical:
        keys, tables = _validated(built, mapper, ctx, bad, result, now)
    result.keys = keys
    quarantine = quarantine_table(bad, now)
    if head.spool is not None:
        result.spooled = spool.write(head.spool, {**tables, spool.QUARANTINE: quarantine})
    else:
        result.tables, result.quarantine = tables, quarantine
    return result


@dataclass
class _Built:
    """One changed order of a job, built by its mapping but not yet checked against the model."""

    job: PageJob
    record_id: str | None
    raw: dict[str, Any]
    extra: dict[str, Any] | None
    payload: bytes
    digest: str
    details: bytes | None
    data: dict[str, Any]

    def quarantined(self, exc: MappingError) -> QuarantinedRecord:
        return _quarantined(self.job, self.record_id, self.raw, self.extra, self.payload, self.digest, exc)


def _quarantined(
    job: PageJob,
    record_id: str | None,
    raw: Any,
    extra: dict[str, Any] | None,
    payload: bytes,
    digest: str,
    exc: MappingError,
) -> QuarantinedRecord:
    return QuarantinedRecord(
        platform=job.platform.value,
        shop=job.shop,
        record_id=record_id,
        path=exc.path,
        reason=exc.reason,
        # Kept whole, details merged in, so the record can be mapped again as it was.
        payload=orjson.dumps({**raw, **extra}) if extra else payload,
        content_hash=digest,
        source_url=job.source_url,
    )


def _columnar(
    built: list[_Built],
    mapper: OrderMapper,
    ctx: MappingContext,
    bad: list[QuarantinedRecord],
    result: PageResult,
    now: datetime,
) -> tuple[list[OrderKey], dict[str, pa.Table]]:
    """The fast path: rows straight from the built dicts, checked a column at a time (no models).
    Raises NotCanonical when a value needs the model's own reading."""
    kept: dict[OrderKey, Mapped] = {}
    skipped: list[QuarantinedRecord] = []
    for item in built:
        data = item.data
        key, created = key_of(data), data.get("created_at")
        if key is None or type(created) is not datetime or created.tzinfo is None:
            raise NotCanonical("the key or the creation time needs the model's reading")
        since = item.job.since
        if since is not None and created < since:
            # Not mirrored, but a record the model refuses is still quarantined, as on the model path.
            try:
                mapper.validate(data, ctx)
            except MappingError as exc:
                skipped.append(item.quarantined(exc))
                continue
            result.skipped += 1
            continue
        kept.pop(key, None)  # listed again in a later page of the job: that reading, in its place
        kept[key] = Mapped(data, item.payload, item.digest, item.job.source_url, item.details)
    tables = dict_tables(list(kept.values()), now) if kept else {}
    for record in skipped:
        bad.append(record)
        result.quarantined.append((record.record_id, record.path, record.reason))
    return list(kept), tables


def _validated(
    built: list[_Built],
    mapper: OrderMapper,
    ctx: MappingContext,
    bad: list[QuarantinedRecord],
    result: PageResult,
    now: datetime,
) -> tuple[list[OrderKey], dict[str, pa.Table]]:
    """The model path: each order validated by pydantic, which names the field at fault."""
    result.skipped = 0
    loaded: dict[OrderKey, LoadedOrder] = {}
    for item in built:
        try:
            order = mapper.validate(item.data, ctx)
        except MappingError as exc:
            bad.append(item.quarantined(exc))
            result.quarantined.append((item.record_id, exc.path, exc.reason))
            continue
        if item.job.since is not None and order.created_at < item.job.since:
            result.skipped += 1
            continue
        key = (item.job.platform.value, item.job.shop, order.external_id)
        loaded.pop(key, None)
        loaded[key] = LoadedOrder(order, item.payload, item.digest, item.job.source_url, item.details)
    return list(loaded), order_tables(loaded.values(), now) if loaded else {}


def _build_into(
    job: PageJob,
    mapper: OrderMapper,
    ctx: MappingContext,
    built: list[_Built],
    bad: list[QuarantinedRecord],
    result: PageResult,
) -> None:
    body = spool.take(job.body_path) if job.body_path is not None else job.body
    records = split_records(body, job.orders_key)
    if job.take is not None:
        records = records[: job.take]
    attachments = orjson.loads(job.attachments) if job.attachments else None
    version = mapper.version + ctx.lookup_version
    result.fetched += len(records)
    ids, known = job.ids, job.known
    for position, record in enumerate(records):
        record_id = ids[position] if position < len(ids) else None
        payload: bytes | None = None
        raw: Any = None
        if record_id is None:  # not read by paging (or the record has none): read it here
            payload = bytes(record)
            raw = orjson.loads(payload)
            record_id = _record_id(raw)
        extra = details_of(record_id, attachments)
        details = orjson.dumps(extra) if extra else None
        digest = order_digest(record, details, version)
        if known is not None and position < len(known) and known[position] == digest:
            result.unchanged += 1
            continue
        if record_id is not None:
            result.digests[record_id] = digest
        if payload is None:
            payload = bytes(record)
            raw = orjson.loads(payload)
        try:
            data = mapper.build({**raw, **extra} if extra else raw, ctx)
        except MappingError as exc:
            bad.append(_quarantined(job, record_id, raw, extra, payload, digest, exc))
            result.quarantined.append((record_id, exc.path, exc.reason))
            continue
        built.append(_Built(job, record_id, raw, extra, payload, digest, details, data))
