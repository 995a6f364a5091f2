"""The order versions: each order's latest mapped version, and the feed routing reads them from.

A shop's runs number their batches (``seq``, one writer per shop at a time: the shop's lease). A
version keeps the number of the batch that last changed it; one whose content hash did not change
keeps its number, so the feed after a position holds exactly the orders that changed since.

The ``projection`` cursor says how far the mirror follows: ``seq``, the last batch number given, and
``mirror``, the id of the mirror that holds every version up to it (None while a mirror is refilled).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, or_, select, true

from ordersync.state.records import aware, get_cursor, set_cursor_in, upsert_into
from ordersync.state.store import StateStore
from ordersync.state.tables import order_versions, quarantine

PROJECTION = "projection"
"""Cursor stream: {"seq": last batch number given, "mirror": id of the mirror that holds it all}."""

_CHUNK = 500


def record(connection: Connection, rows: Sequence[dict[str, Any]], seq: int) -> None:
    """Upsert a batch's versions inside the caller's transaction; an unchanged one keeps its seq."""
    if not rows:
        return
    statement = upsert_into(connection.dialect.name, order_versions)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["platform", "shop", "order_id"],
        set_={
            "content_hash": excluded.content_hash,
            "seq": excluded.seq,
            "status": excluded.status,
            "created_at": excluded.created_at,
            "updated_at": excluded.updated_at,
            "facts": excluded.facts,
        },
        where=order_versions.c.content_hash != excluded.content_hash,
    )
    for start in range(0, len(rows), _CHUNK):
        connection.execute(statement, [{**row, "seq": seq} for row in rows[start : start + _CHUNK]])


def known_hashes(store: StateStore, platform: str, shop: str) -> dict[str, str]:
    """order id -> content hash of the shop's versions and quarantined records. A quarantined record
    wins: a write that maps an order releases its quarantine, so one still held was seen later."""
    with store.engine.connect() as connection:
        known = dict(
            connection.execute(
                select(order_versions.c.order_id, order_versions.c.content_hash).where(
                    order_versions.c.platform == platform, order_versions.c.shop == shop
                )
            ).all()
        )
        held = connection.execute(
            select(quarantine.c.record_id, quarantine.c.content_hash)
            .where(
                quarantine.c.platform == platform,
                quarantine.c.shop == shop,
                quarantine.c.record_id.is_not(None),
            )
            .order_by(quarantine.c.last_seen)
        ).all()
    known.update(held)
    return known


@dataclass(frozen=True)
class Version:
    platform: str
    order_id: str
    seq: int
    status: str | None
    created_at: datetime
    updated_at: datetime | None
    facts: dict[str, Any]


def _version(row: Any) -> Version:
    created = aware(row.created_at)
    assert created is not None
    return Version(
        platform=row.platform,
        order_id=row.order_id,
        seq=int(row.seq),
        status=row.status,
        created_at=created,
        updated_at=aware(row.updated_at),
        facts=orjson.loads(row.facts),
    )


def changed_since(
    store: StateStore, platform: str, shop: str, after: tuple[int, str], limit: int
) -> list[Version]:
    """Up to ``limit`` versions after the ``(seq, order_id)`` position, in that order."""
    c = order_versions.c
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(c.platform, c.order_id, c.seq, c.status, c.created_at, c.updated_at, c.facts)
            .where(
                c.platform == platform,
                c.shop == shop,
                or_(c.seq > after[0], and_(c.seq == after[0], c.order_id > after[1])),
            )
            .order_by(c.seq, c.order_id)
            .limit(limit)
        ).all()
    return [_version(row) for row in rows]


def open_orders(
    store: StateStore,
    platform: str,
    shop: str,
    *,
    final_statuses: Iterable[str],
    modified_since: datetime | None,
) -> dict[str, frozenset[str]]:
    """The shop's orders still open (status not final) or modified since the given time, each with the
    ids of the comments its version holds: a WooCommerce note does not change its order, so a sync
    re-reads the notes of these and takes those whose notes differ."""
    c = order_versions.c
    final = [str(s) for s in final_statuses]
    still_open = or_(c.status.is_(None), c.status.not_in(final)) if final else true()
    if modified_since is not None:
        still_open = or_(still_open, c.updated_at >= modified_since)
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(c.order_id, c.facts).where(c.platform == platform, c.shop == shop, still_open)
        ).all()
    return {
        row.order_id: frozenset(
            str(comment[0]) for comment in orjson.loads(row.facts)["comments"] if comment[0]
        )
        for row in rows
    }


def versions_of(store: StateStore, platform: str, shop: str, ids: Sequence[str]) -> dict[str, Version]:
    """The versions of these orders (for tests and tools that inspect one order)."""
    c = order_versions.c
    found: dict[str, Version] = {}
    with store.engine.connect() as connection:
        for start in range(0, len(ids), _CHUNK):
            rows = connection.execute(
                select(c.platform, c.order_id, c.seq, c.status, c.created_at, c.updated_at, c.facts).where(
                    c.platform == platform, c.shop == shop, c.order_id.in_(ids[start : start + _CHUNK])
                )
            ).all()
            found |= {row.order_id: _version(row) for row in rows}
    return found


def projection(store: StateStore, shop: str) -> dict[str, Any]:
    return get_cursor(store, shop, PROJECTION) or {"seq": 0, "mirror": None}


def set_projection(connection: Connection, shop: str, seq: int, mirror: str | None) -> None:
    set_cursor_in(connection, shop, PROJECTION, {"seq": seq, "mirror": mirror})
