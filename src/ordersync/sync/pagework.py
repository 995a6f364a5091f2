"""Mapping one page of raw orders into mirror tables: the CPU-bound step, run in worker processes.

A worker gets the page's bytes as received, parses them, maps and validates each order, and hands
back Arrow tables (cheap to send between processes) with the quarantined records. Mapping is pure,
so a page gives the same tables in any process; the main process only fetches and writes.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa

from ordersync.mapping import MappingContext, MappingError, load_mapping
from ordersync.mirror.batch import LoadedOrder, OrderKey, QuarantinedRecord, order_tables, quarantine_table
from ordersync.models import Platform


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

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


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


@dataclass
class PageResult:
    tables: dict[str, pa.Table]
    quarantine: pa.Table
    keys: list[OrderKey]
    fetched: int = 0
    skipped: int = 0
    quarantined: list[tuple[str | None, str, str]] = field(default_factory=list)


def content_hash(payload: bytes, mapping_version: str) -> str:
    """Changes when the payload or the mapping that reads it changes, so either re-writes the order."""
    return hashlib.blake2b(payload + mapping_version.encode(), digest_size=16).hexdigest()


def _record_id(raw: Any) -> str | None:
    if isinstance(raw, dict) and raw.get("id") is not None:
        return str(raw["id"])
    return None


def details_of(raw: Any, attachments: dict[str, dict[str, Any]] | None) -> dict[str, Any] | None:
    """What was fetched beside this order (refunds, notes), keyed by its id; None when nothing was."""
    if not attachments or not isinstance(raw, dict):
        return None
    return attachments.get(str(raw.get("id"))) or None


def order_digest(payload: bytes, details: bytes | None, mapping_version: str) -> str:
    """The order as the shop listed it and the details fetched beside it: a new note or refund changes
    the hash, so the order is rewritten, while ``raw_orders`` keeps the two apart."""
    return content_hash(payload + details if details else payload, mapping_version)


def map_page(job: PageJob) -> PageResult:
    body = orjson.loads(job.body)
    raws = body[job.orders_key] if job.orders_key else body
    if job.take is not None:
        raws = raws[: job.take]
    attachments = orjson.loads(job.attachments) if job.attachments else None
    mapper = load_mapping(job.mapping)
    ctx = MappingContext(
        platform=job.platform, shop=job.shop, timezone=ZoneInfo(job.timezone), currency=job.currency
    )
    now = datetime.now(UTC)
    loaded: dict[OrderKey, LoadedOrder] = {}
    bad: list[QuarantinedRecord] = []
    result = PageResult(tables={}, quarantine=quarantine_table([], now), keys=[], fetched=len(raws))
    for raw in raws:
        payload = orjson.dumps(raw)
        extra = details_of(raw, attachments)
        details = orjson.dumps(extra) if extra else None
        digest = order_digest(payload, details, mapper.version)
        try:
            order = mapper.map({**raw, **extra} if extra else raw, ctx)
        except MappingError as exc:
            record_id = _record_id(raw)
            bad.append(
                QuarantinedRecord(
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
            )
            result.quarantined.append((record_id, exc.path, exc.reason))
            continue
        if job.since is not None and order.created_at < job.since:
            result.skipped += 1
            continue
        loaded[(job.platform.value, job.shop, order.external_id)] = LoadedOrder(
            order, payload, digest, job.source_url, details
        )
    result.tables = order_tables(loaded.values(), now)
    result.quarantine = quarantine_table(bad, now)
    result.keys = list(loaded)
    return result
