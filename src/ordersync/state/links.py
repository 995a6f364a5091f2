"""Links between the same order in two shops, tracked order states, and recorded conflicts.

All functions take the caller's connection: routing and the outbox write these in the same
transaction as the operations they queue or complete.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select

from ordersync.state.records import aware, upsert_into
from ordersync.state.tables import conflicts, links, tracked


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Link:
    source_shop: str
    source_order_id: str
    target_shop: str
    target_order_id: str
    created_at: datetime
    total_difference: Decimal | None = None


def add_link(
    connection: Connection,
    source_shop: str,
    source_order_id: str,
    target_shop: str,
    target_order_id: str,
    *,
    total_difference: Decimal | None = None,
) -> None:
    statement = (
        upsert_into(connection.dialect.name, links)
        .values(
            source_shop=source_shop,
            source_order_id=source_order_id,
            target_shop=target_shop,
            target_order_id=target_order_id,
            created_at=_now(),
            total_difference=total_difference or None,
        )
        .on_conflict_do_nothing(index_elements=["source_shop", "source_order_id", "target_shop"])
    )
    connection.execute(statement)


def linked_orders(connection: Connection, shop: str) -> dict[str, dict[str, str]]:
    """For each order of ``shop`` that has a counterpart: the other shop -> that order's id, whichever
    side of the link it is on."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    query = select(links).where(or_(links.c.source_shop == shop, links.c.target_shop == shop))
    for row in connection.execute(query):
        if row.source_shop == shop:
            found[row.source_order_id][row.target_shop] = row.target_order_id
        else:
            found[row.target_order_id][row.source_shop] = row.source_order_id
    return dict(found)


def counterpart(connection: Connection, shop: str, order_id: str, other: str) -> str | None:
    query = select(links).where(
        or_(
            and_(
                links.c.source_shop == shop, links.c.source_order_id == order_id, links.c.target_shop == other
            ),
            and_(
                links.c.target_shop == shop, links.c.target_order_id == order_id, links.c.source_shop == other
            ),
        )
    )
    row = connection.execute(query).first()
    if row is None:
        return None
    return row.target_order_id if row.source_shop == shop else row.source_order_id


def all_links(connection: Connection) -> list[Link]:
    return [
        Link(
            r.source_shop,
            r.source_order_id,
            r.target_shop,
            r.target_order_id,
            aware(r.created_at),  # type: ignore[arg-type]
            None if r.total_difference is None else Decimal(r.total_difference),
        )
        for r in connection.execute(select(links).order_by(links.c.id))
    ]


# -- tracked order states -----------------------------------------------------------------------------
def tracked_states(connection: Connection, shop: str, order_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The tracked states of these orders, locked for the caller's transaction."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(order_ids), 500):
        chunk = order_ids[start : start + 500]
        query = (
            select(tracked.c.order_id, tracked.c.state)
            .where(tracked.c.shop == shop, tracked.c.order_id.in_(chunk))
            # Routing and the outbox both read, change and write these: on PostgreSQL the rows are
            # locked until the transaction ends (SQLite's writer lock, taken first, does the same).
            .with_for_update()
        )
        found.update({row.order_id: dict(row.state) for row in connection.execute(query)})
    return found


def save_state(connection: Connection, shop: str, order_id: str, state: dict[str, Any]) -> None:
    values = {"shop": shop, "order_id": order_id, "state": state, "updated_at": _now()}
    statement = upsert_into(connection.dialect.name, tracked).values(**values)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["shop", "order_id"], set_={"state": state, "updated_at": values["updated_at"]}
        )
    )


# -- conflicts ----------------------------------------------------------------------------------------
def record_conflict(connection: Connection, **values: Any) -> None:
    connection.execute(insert(conflicts).values(detected_at=_now(), **values))


def all_conflicts(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(select(conflicts).order_by(conflicts.c.id)).mappings().all()
    out = []
    for row in rows:
        item = dict(row)
        for key in ("changed_a", "changed_b", "detected_at"):
            item[key] = aware(item[key])
        out.append(item)
    return out
