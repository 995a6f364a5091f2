"""Verified webhook deliveries in the state store: what makes a repeat change nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ordersync.state.records import aware
from ordersync.state.store import StateStore
from ordersync.state.tables import webhook_deliveries, webhook_secrets


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
    version of the order, its id and date_modified with the same body, was queued by an earlier
    delivery). WooCommerce makes delivery ids per webhook and second, and date_modified has whole
    seconds, so neither alone tells two saves within one second apart; the body does."""
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
                        # date_modified counts seconds: a second save in the same second is news.
                        webhook_deliveries.c.body_sha256 == delivery.body_sha256,
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
    return aware(value)


@dataclass(frozen=True)
class Installed:
    shop: str
    delivery_url: str
    installed_at: datetime
    shop_status: str | None
    checked_at: datetime | None


def save_secret(store: StateStore, shop: str, secret: str, url: str, *, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    with store.engine.begin() as con:
        con.execute(delete(webhook_secrets).where(webhook_secrets.c.shop == shop))
        con.execute(
            insert(webhook_secrets).values(
                shop=shop,
                secret=secret,
                delivery_url=url,
                installed_at=now,
                shop_status="active",
                checked_at=now,
            )
        )


def forget(store: StateStore, shop: str) -> None:
    with store.engine.begin() as con:
        con.execute(delete(webhook_secrets).where(webhook_secrets.c.shop == shop))


def secret_of(store: StateStore, shop: str) -> str | None:
    with store.engine.connect() as con:
        return con.execute(select(webhook_secrets.c.secret).where(webhook_secrets.c.shop == shop)).scalar()


def installed(store: StateStore) -> dict[str, Installed]:
    with store.engine.connect() as con:
        rows = con.execute(select(webhook_secrets).order_by(webhook_secrets.c.shop)).mappings().all()
    return {
        r["shop"]: Installed(
            r["shop"], r["delivery_url"], aware(r["installed_at"]), r["shop_status"], aware(r["checked_at"])
        )  # type: ignore[arg-type]
        for r in rows
    }


def note_shop_status(store: StateStore, shop: str, status: str, *, now: datetime | None = None) -> None:
    """What WooCommerce says of the shop's webhooks: ``active``, or ``disabled`` once it gave up after
    failed deliveries (``paused`` by a person)."""
    with store.engine.begin() as con:
        con.execute(
            update(webhook_secrets)
            .where(webhook_secrets.c.shop == shop)
            .values(shop_status=status, checked_at=now or datetime.now(UTC))
        )


KEEP = timedelta(days=30)
"""How long a delivery is remembered: a replay older than this is taken as news, which costs one read
of the order (the body is never trusted), so the table need not grow without end."""


def prune(store: StateStore, shop: str, *, now: datetime | None = None) -> int:
    cutoff = (now or datetime.now(UTC)) - KEEP
    with store.engine.begin() as con:
        return con.execute(
            delete(webhook_deliveries).where(
                webhook_deliveries.c.shop == shop, webhook_deliveries.c.received_at < cutoff
            )
        ).rowcount
