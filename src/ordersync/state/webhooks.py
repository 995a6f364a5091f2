"""Verified webhook deliveries in the state store: what makes a repeat change nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from ordersync.state.store import StateStore
from ordersync.state.tables import webhook_deliveries


@dataclass(frozen=True)
class Delivery:
    shop: str
    delivery_id: str
    body_sha256: str
    webhook_id: str | None
    topic: str
    order_id: str | None
    modified: str | None


def record(store: StateStore, delivery: Delivery, *, now: datetime | None = None) -> str:
    """Note the delivery and say what it comes to: ``queued`` (news: sync the order), ``duplicate``
    (this delivery id and body came before: WooCommerce or a proxy sent it again) or ``seen`` (this
    version of the order, its id and date_modified, was queued by an earlier delivery)."""
    now = now or datetime.now(UTC)
    values = {**delivery.__dict__, "received_at": now}
    try:
        with store.engine.begin() as con:
            seen = (
                delivery.modified is not None
                and con.execute(
                    select(func.count())
                    .select_from(webhook_deliveries)
                    .where(
                        webhook_deliveries.c.shop == delivery.shop,
                        webhook_deliveries.c.order_id == delivery.order_id,
                        webhook_deliveries.c.modified == delivery.modified,
                        webhook_deliveries.c.outcome == "queued",
                    )
                ).scalar_one()
            )
            outcome = "seen" if seen else "queued"
            con.execute(insert(webhook_deliveries).values(**values, outcome=outcome))
        return outcome
    except IntegrityError:
        return "duplicate"


def last_delivery(store: StateStore, shop: str) -> datetime | None:
    with store.engine.connect() as con:
        value = con.execute(
            select(func.max(webhook_deliveries.c.received_at)).where(webhook_deliveries.c.shop == shop)
        ).scalar_one()
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
