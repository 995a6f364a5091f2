"""Reading and writing the state tables: cursors, run history and quarantine.

Every function is one short transaction, so a crash between two of them leaves each either done or
not; callers order them so that a cursor moves only after the mirror holds what it covers.
SQLite gives back naive datetimes from ``DateTime(timezone=True)``; they were stored as UTC and are
handed back aware.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ordersync.state.store import StateStore
from ordersync.state.tables import cursors, outbox, quarantine, runs


def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def upsert_into(dialect: str, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` for the store's backend (both dialects spell it the same)."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# -- cursors -----------------------------------------------------------------------------------------
def get_cursor(store: StateStore, shop: str, stream: str) -> dict[str, Any] | None:
    with store.engine.connect() as connection:
        row = connection.execute(
            select(cursors.c.value).where(cursors.c.shop == shop, cursors.c.stream == stream)
        ).first()
    return dict(row.value) if row is not None else None


def set_cursor(store: StateStore, shop: str, stream: str, value: dict[str, Any]) -> None:
    """Insert or replace; one statement on either backend, so two writers cannot both insert."""
    with store.engine.begin() as connection:
        set_cursor_in(connection, shop, stream, value)


def set_cursor_in(connection: Connection, shop: str, stream: str, value: dict[str, Any]) -> None:
    """``set_cursor`` inside the caller's transaction, beside the work the cursor covers."""
    values = {"shop": shop, "stream": stream, "value": value, "updated_at": _now()}
    upsert = upsert_into(connection.dialect.name, cursors).values(**values)
    connection.execute(
        upsert.on_conflict_do_update(
            index_elements=["shop", "stream"], set_={"value": value, "updated_at": values["updated_at"]}
        )
    )


def delete_cursor(store: StateStore, shop: str, stream: str) -> None:
    with store.engine.begin() as connection:
        connection.execute(delete(cursors).where(cursors.c.shop == shop, cursors.c.stream == stream))


def shop_cursors(store: StateStore, shop: str) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(cursors.c.stream, cursors.c.value).where(cursors.c.shop == shop)
        ).all()
    return {row.stream: dict(row.value) for row in rows}


# -- runs --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    id: int
    shop: str
    kind: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    fetched: int
    loaded: int
    unchanged: int
    quarantined: int
    error: str | None
    details: dict[str, Any]


def this_process() -> dict[str, Any]:
    """Which process runs this: lets a later run tell a live run from one whose process died."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def process_alive(details: dict[str, Any] | None) -> bool:
    """True only for a run of a process still alive on this host; other hosts cannot be asked."""
    if not details or details.get("host") != socket.gethostname() or not isinstance(details.get("pid"), int):
        return False
    try:
        os.kill(details["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def start_run(store: StateStore, shop: str, kind: str) -> int:
    with store.engine.begin() as connection:
        result = connection.execute(
            insert(runs)
            .values(
                shop=shop,
                kind=kind,
                started_at=_now(),
                status="running",
                fetched=0,
                loaded=0,
                unchanged=0,
                quarantined=0,
                details=this_process(),
            )
            .returning(runs.c.id)
        )
        return int(result.scalar_one())


def finish_run(
    store: StateStore,
    run_id: int,
    *,
    status: str,
    fetched: int = 0,
    loaded: int = 0,
    unchanged: int = 0,
    quarantined: int = 0,
    error: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                finished_at=_now(),
                status=status,
                fetched=fetched,
                loaded=loaded,
                unchanged=unchanged,
                quarantined=quarantined,
                error=error,
                details=details or {},
            )
        )


def _run(row: Any) -> RunRecord:
    return RunRecord(
        id=row.id,
        shop=row.shop,
        kind=row.kind,
        started_at=aware(row.started_at),  # type: ignore[arg-type]
        finished_at=aware(row.finished_at),
        status=row.status,
        fetched=row.fetched,
        loaded=row.loaded,
        unchanged=row.unchanged,
        quarantined=row.quarantined,
        error=row.error,
        details=dict(row.details or {}),
    )


def last_runs(store: StateStore, shop: str, limit: int = 1, *, status: str | None = None) -> list[RunRecord]:
    query = select(runs).where(runs.c.shop == shop)
    if status is not None:
        query = query.where(runs.c.status == status)
    with store.engine.connect() as connection:
        rows = connection.execute(query.order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit))
        return [_run(row) for row in rows]


def abandon_stale_runs(store: StateStore, shop: str) -> int:
    """Runs left 'running' by a process that died are marked, so history does not show them as live.
    A run whose process is still alive on this host (the daemon, while someone runs `sync` by hand)
    is left alone."""
    with store.engine.begin() as connection:
        rows = connection.execute(
            select(runs.c.id, runs.c.details).where(runs.c.shop == shop, runs.c.status == "running")
        ).all()
        dead = [row.id for row in rows if not process_alive(row.details)]
        if dead:
            connection.execute(
                update(runs)
                .where(runs.c.id.in_(dead))
                .values(
                    status="abandoned", finished_at=_now(), error="the process stopped before the run ended"
                )
            )
        return len(dead)


# -- quarantine --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quarantined:
    platform: str
    shop: str
    record_id: str | None
    path: str
    reason: str
    payload: str
    content_hash: str
    source_url: str | None


def record_quarantine(store: StateStore, records: Sequence[Quarantined]) -> None:
    """One row per bad record: seen again with the same payload, only ``last_seen`` moves; seen with
    another payload that is still bad, the new one replaces it."""
    latest: dict[tuple[str, str, str], Quarantined] = {}
    for record in records:  # one statement may not touch a row twice (PostgreSQL refuses)
        latest[(record.platform, record.shop, record.content_hash)] = record
    if not latest:
        return
    now = _now()
    rows = [{**record.__dict__, "first_seen": now, "last_seen": now} for record in latest.values()]
    statement = upsert_into(store.engine.dialect.name, quarantine).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["platform", "shop", "content_hash"],
        set_={"last_seen": now, "reason": statement.excluded.reason, "path": statement.excluded.path},
    )
    with store.engine.begin() as connection:
        for record in latest.values():
            if record.record_id is not None:
                connection.execute(
                    delete(quarantine).where(
                        quarantine.c.platform == record.platform,
                        quarantine.c.shop == record.shop,
                        quarantine.c.record_id == record.record_id,
                        quarantine.c.content_hash != record.content_hash,
                    )
                )
        connection.execute(statement)


def release_quarantine(store: StateStore, platform: str, shop: str, record_ids: Iterable[str]) -> int:
    """Records that now map (a mapping fix, or the shop corrected them) leave the quarantine."""
    ids = list(record_ids)
    released = 0
    with store.engine.begin() as connection:
        for start in range(0, len(ids), 500):
            result = connection.execute(
                delete(quarantine).where(
                    quarantine.c.platform == platform,
                    quarantine.c.shop == shop,
                    quarantine.c.record_id.in_(ids[start : start + 500]),
                )
            )
            released += result.rowcount or 0
    return released


def quarantine_count(store: StateStore, shop: str) -> int:
    with store.engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(quarantine).where(quarantine.c.shop == shop)
            ).scalar_one()
        )


def outbox_depth(store: StateStore, shop: str) -> dict[str, int]:
    """Outbox rows per status for one target shop (the write-back issue fills it)."""
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(outbox.c.status, func.count()).where(outbox.c.shop == shop).group_by(outbox.c.status)
        ).all()
    return {status: int(count) for status, count in rows}
