"""The outbox table: queued writes, their claims, outcomes and dead letters.

An operation is inserted under its idempotency key (a second insert of the same key is a no-op, so a
change seen twice is queued once). A worker claims a row by moving it to ``sending`` with a lease;
``sent_at`` and the target's ``baseline`` are committed *before* the request leaves, so whoever picks
the row up after a crash knows the send may have happened and looks for its effect first.

Statuses: ``pending`` (waiting, maybe for a retry time), ``sending`` (claimed), ``done``, ``dead``
(failed for good: refused, or out of attempts), ``superseded`` (lost a conflict), ``dropped`` (by a
person, with ``ordersync outbox drop``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Connection, exists, func, or_, select, update

from ordersync.operations import Operation
from ordersync.state.records import aware, process_alive, this_process, upsert_into
from ordersync.state.store import StateStore
from ordersync.state.tables import outbox

PENDING, SENDING, DONE, DEAD, SUPERSEDED, DROPPED = (
    "pending",
    "sending",
    "done",
    "dead",
    "superseded",
    "dropped",
)
OPEN = (PENDING, SENDING)

_OPERATION: TypeAdapter[Operation] = TypeAdapter(Operation)


def dump_op(op: Operation) -> dict[str, Any]:
    return _OPERATION.dump_python(op, mode="json", exclude_none=True)


def load_op(payload: dict[str, Any]) -> Operation:
    return _OPERATION.validate_python(payload)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    key: str
    shop: str
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    done_at: datetime | None
    order_id: str | None
    origin: str | None
    source_shop: str | None
    source_order_id: str | None
    changed_at: datetime | None
    sent_at: datetime | None
    baseline: dict[str, Any] | None
    lease_until: datetime | None = None

    @property
    def op(self) -> Operation:
        return load_op(self.payload)


def _row(row: Any) -> OutboxRow:
    return OutboxRow(
        id=row.id,
        key=row.idempotency_key,
        shop=row.shop,
        kind=row.kind,
        payload=dict(row.payload),
        status=row.status,
        attempts=row.attempts or 0,
        next_attempt_at=aware(row.next_attempt_at),
        last_error=row.last_error,
        result=dict(row.result) if row.result is not None else None,
        created_at=aware(row.created_at),  # type: ignore[arg-type]
        done_at=aware(row.done_at),
        order_id=row.order_id,
        origin=row.origin,
        source_shop=row.source_shop,
        source_order_id=row.source_order_id,
        changed_at=aware(row.changed_at),
        sent_at=aware(row.sent_at),
        baseline=dict(row.baseline) if row.baseline is not None else None,
        lease_until=aware(row.lease_until),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def enqueue(
    connection: Connection,
    *,
    key: str,
    shop: str,
    op: Operation,
    origin: str,
    source_shop: str | None = None,
    source_order_id: str | None = None,
    changed_at: datetime | None = None,
    status: str = PENDING,
    last_error: str | None = None,
    now: datetime | None = None,
) -> int | None:
    """Queue ``op`` for ``shop`` in the caller's transaction; None when the key is already queued."""
    now = now or _now()
    values = {
        "idempotency_key": key,
        "shop": shop,
        "kind": op.kind,
        "payload": dump_op(op),
        "status": status,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "order_id": getattr(op, "order_id", None),
        "origin": origin,
        "source_shop": source_shop,
        "source_order_id": source_order_id,
        "changed_at": changed_at,
        "last_error": last_error,
        "done_at": now if status != PENDING else None,
    }
    statement = (
        upsert_into(connection.dialect.name, outbox)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(outbox.c.id)
    )
    row = connection.execute(statement).first()
    return int(row.id) if row is not None else None


def get(connection: Connection, row_id: int) -> OutboxRow | None:
    row = connection.execute(select(outbox).where(outbox.c.id == row_id)).first()
    return _row(row) if row is not None else None


def by_key(connection: Connection, key: str) -> OutboxRow | None:
    row = connection.execute(select(outbox).where(outbox.c.idempotency_key == key)).first()
    return _row(row) if row is not None else None


def open_for(connection: Connection, shop: str, order_id: str, kind: str | None = None) -> list[OutboxRow]:
    """Operations still to be applied to one order of ``shop``."""
    query = select(outbox).where(
        outbox.c.shop == shop, outbox.c.order_id == order_id, outbox.c.status.in_(OPEN)
    )
    if kind is not None:
        query = query.where(outbox.c.kind == kind)
    return [_row(r) for r in connection.execute(query.order_by(outbox.c.id))]


def unresolved_creates(connection: Connection, shop: str) -> int:
    """Replications into ``shop`` that were sent and not yet confirmed: their order may exist there
    unlinked, so it must not be taken for a new order of that shop."""
    return int(
        connection.execute(
            select(func.count())
            .select_from(outbox)
            .where(
                outbox.c.shop == shop,
                outbox.c.kind == "create_order",
                outbox.c.status.in_(OPEN),
                outbox.c.sent_at.is_not(None),
            )
        ).scalar_one()
    )


def claim(
    store: StateStore,
    *,
    lease: timedelta,
    limit: int,
    ids: list[int] | None = None,
    shops: list[str] | None = None,
    now: datetime | None = None,
) -> list[OutboxRow]:
    """Take due rows for this process: pending ones whose time has come, and ``sending`` ones whose
    worker died (lease over, or its pid gone on this host). Only the oldest open operation of each
    target order is taken: a later one waits for it, so an older status never lands after a newer
    one and a refund waits for the payment queued before it. Each row is taken with a conditional
    UPDATE on its lease, so two workers never hold the same row; the new ``lease_until`` is the
    holder's token."""
    now = now or _now()
    older = outbox.alias("older")
    first_in_line = or_(
        outbox.c.order_id.is_(None),
        ~exists().where(
            older.c.shop == outbox.c.shop,
            older.c.order_id == outbox.c.order_id,
            older.c.status.in_(OPEN),
            older.c.id < outbox.c.id,
        ),
    )
    due = or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now)
    pending = select(outbox).where(outbox.c.status == PENDING, due, first_in_line)
    sending = select(outbox).where(outbox.c.status == SENDING, first_in_line)
    if ids is not None:
        pending = select(outbox).where(outbox.c.id.in_(ids), outbox.c.status == PENDING, first_in_line)
        sending = sending.where(outbox.c.id.in_(ids))
    if shops is not None:
        pending = pending.where(outbox.c.shop.in_(shops))
        sending = sending.where(outbox.c.shop.in_(shops))
    pending = pending.order_by(outbox.c.id).limit(limit * 4)
    taken: list[OutboxRow] = []
    with store.engine.begin() as connection:
        candidates = [r for r in connection.execute(sending).all() if _abandoned(r, now)]
        candidates += connection.execute(pending).all()
        for raw in sorted(candidates, key=lambda r: r.id):
            if len(taken) >= limit:
                break
            result = connection.execute(
                update(outbox)
                .where(outbox.c.id == raw.id, outbox.c.status == raw.status)
                .where(
                    outbox.c.lease_until.is_(None)
                    if raw.lease_until is None
                    else outbox.c.lease_until == raw.lease_until
                )
                .values(
                    status=SENDING,
                    attempts=(raw.attempts or 0) + 1,
                    lease_until=now + lease,
                    claimed_by=this_process(),
                )
            )
            if result.rowcount == 1:
                row = connection.execute(select(outbox).where(outbox.c.id == raw.id)).one()
                taken.append(_row(row))
    return taken


def _abandoned(raw: Any, now: datetime) -> bool:
    """A ``sending`` row whose worker is gone: its lease ran out, or its pid is dead on this host."""
    lease_until = aware(raw.lease_until)
    if lease_until is None or lease_until <= now:
        return True
    claimed = raw.claimed_by or {}
    return claimed.get("host") == this_process()["host"] and not process_alive(claimed)


def hold(
    store: StateStore,
    row: OutboxRow,
    lease: timedelta,
    *,
    baseline: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
) -> OutboxRow | None:
    """Renew this worker's claim (with ``baseline``, also commit ``sent_at`` before a send): an update
    conditional on the lease it holds. None when the claim was lost (the lease ran out and another
    worker took the row): then this worker must not send."""
    values: dict[str, Any] = {"lease_until": _now() + lease}
    if baseline is not None:
        values.update(sent_at=_now(), baseline=baseline)
    if payload is not None:
        values["payload"] = payload
    with store.engine.begin() as connection:
        result = connection.execute(
            update(outbox)
            .where(outbox.c.id == row.id, outbox.c.status == SENDING)
            .where(outbox.c.lease_until == row.lease_until)
            .values(**values)
        )
        if result.rowcount != 1:
            return None
        return _row(connection.execute(select(outbox).where(outbox.c.id == row.id)).one())


def complete(
    connection: Connection,
    row_id: int,
    result: dict[str, Any],
    *,
    order_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": DONE,
        "result": result,
        "done_at": _now(),
        "lease_until": None,
        "last_error": None,
    }
    if order_id is not None:
        values["order_id"] = order_id
    if payload is not None:
        values["payload"] = payload
    connection.execute(update(outbox).where(outbox.c.id == row_id).values(**values))


def fail(store: StateStore, row_id: int, error: str, *, retry_at: datetime | None) -> str:
    """Record a failed attempt: retried at ``retry_at``, or dead-lettered when it is None."""
    status = PENDING if retry_at is not None else DEAD
    with store.engine.begin() as connection:
        connection.execute(
            update(outbox)
            .where(outbox.c.id == row_id)
            .values(
                status=status,
                last_error=error[:2000],
                next_attempt_at=retry_at,
                lease_until=None,
                done_at=None if retry_at is not None else _now(),
            )
        )
    return status


def mark_superseded(connection: Connection, row_id: int, reason: str) -> None:
    """This worker's own claimed operation lost a conflict: it is not sent."""
    connection.execute(
        update(outbox)
        .where(outbox.c.id == row_id)
        .values(status=SUPERSEDED, last_error=reason, lease_until=None, done_at=_now())
    )


def supersede(connection: Connection, row_id: int, reason: str) -> bool:
    """Mark a pending operation as lost to a conflict; one already being sent cannot be stopped."""
    result = connection.execute(
        update(outbox)
        .where(outbox.c.id == row_id, outbox.c.status == PENDING)
        .values(status=SUPERSEDED, last_error=reason, lease_until=None, done_at=_now())
    )
    return result.rowcount == 1


def rows(
    store: StateStore,
    *,
    statuses: list[str] | None = None,
    shop: str | None = None,
    limit: int | None = None,
    ids: list[int] | None = None,
) -> list[OutboxRow]:
    query = select(outbox).order_by(outbox.c.id)
    if statuses:
        query = query.where(outbox.c.status.in_(statuses))
    if shop:
        query = query.where(outbox.c.shop == shop)
    if ids is not None:
        query = query.where(outbox.c.id.in_(ids))
    if limit:
        query = query.limit(limit)
    with store.engine.connect() as connection:
        return [_row(r) for r in connection.execute(query)]


STATUS_FIELDS = {"set_status": "status", "cancel_order": "status", "set_payment_status": "payment_status"}


def retry(store: StateStore, ids: list[int] | None, *, shop: str | None = None) -> int:
    """Give dead-lettered operations a fresh set of attempts, due now (all dead ones when ids is None).
    A dead status change that a newer change of the same order's field has followed since is not
    revived but superseded: applied now, it would undo the newer one."""
    query = select(outbox).where(outbox.c.status == DEAD)
    if ids is not None:
        query = query.where(outbox.c.id.in_(ids))
    if shop:
        query = query.where(outbox.c.shop == shop)
    revived = 0
    with store.engine.begin() as connection:
        for row in connection.execute(query).all():
            field = STATUS_FIELDS.get(row.kind)
            if field is not None and row.order_id is not None:
                kinds = [k for k, f in STATUS_FIELDS.items() if f == field]
                newer = connection.execute(
                    select(outbox.c.id).where(
                        outbox.c.shop == row.shop,
                        outbox.c.order_id == row.order_id,
                        outbox.c.kind.in_(kinds),
                        outbox.c.id > row.id,
                        outbox.c.status.not_in((DROPPED, SUPERSEDED)),
                    )
                ).first()
                if newer is not None:
                    connection.execute(
                        update(outbox)
                        .where(outbox.c.id == row.id)
                        .values(
                            status=SUPERSEDED, last_error=f"replaced by the newer {field} change #{newer.id}"
                        )
                    )
                    continue
            # A person retrying an invoice whose answer was lost asks for it to be sent again: it leaves
            # no trace to look for first, so its earlier send is forgotten.
            resend = {"sent_at": None} if row.kind == "send_invoice" else {}
            connection.execute(
                update(outbox)
                .where(outbox.c.id == row.id)
                .values(status=PENDING, attempts=0, next_attempt_at=_now(), done_at=None, **resend)
            )
            revived += 1
    return revived


def drop(store: StateStore, ids: list[int]) -> int:
    """Give up on pending or dead operations for good; the row stays, marked dropped."""
    with store.engine.begin() as connection:
        result = connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids), outbox.c.status.in_((PENDING, DEAD)))
            .values(status=DROPPED, done_at=_now(), lease_until=None)
        )
    return int(result.rowcount)
