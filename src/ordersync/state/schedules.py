"""A shop's scheduled firing runs once across every daemon sharing the state store.

Why: each daemon's scheduler fires on its own clock, so N daemons would sync every shop N times a
period. A firing first claims the period: one conditional UPDATE moves the shop's ``next_due`` on
only if it is due, so of the daemons firing in one period exactly one wins, on SQLite as on
PostgreSQL. The winner then takes the shop's lease (state/leases.py) for the run itself. A daemon
that dies leaves ``next_due`` as it was: the next daemon to fire after it claims the shop, so a
shop keeps its schedule within one period of losing a daemon.

``next_due`` is set to 90 % of the period ahead, so a daemon whose timer fires a little early still
takes its own next firing, and two firings in the cluster are never closer than that.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ordersync.state.records import aware
from ordersync.state.store import StateStore
from ordersync.state.tables import shop_schedules

SPACING = 0.9
"""The share of its period before a shop is due again, cluster-wide."""


def me() -> str:
    return f"pid {os.getpid()} on host {socket.gethostname()}"


@dataclass(frozen=True)
class Claim:
    shop: str
    next_due: datetime
    claimed_by: str
    claimed_at: datetime


def claim(
    store: StateStore, shop: str, period: float, *, now: datetime | None = None, by: str | None = None
) -> bool:
    """Take this period's firing of the shop; False when another daemon took it already."""
    now = now or datetime.now(UTC)
    values = {
        "next_due": now + timedelta(seconds=period * SPACING),
        "claimed_by": by or me(),
        "claimed_at": now,
    }
    with store.engine.begin() as con:
        taken = con.execute(
            update(shop_schedules)
            .where(shop_schedules.c.shop == shop, shop_schedules.c.next_due <= now)
            .values(**values)
        ).rowcount
        if taken == 1:
            return True
        if con.execute(select(shop_schedules.c.shop).where(shop_schedules.c.shop == shop)).first():
            return False
    try:
        with store.engine.begin() as con:
            con.execute(insert(shop_schedules).values(shop=shop, **values))
        return True
    except IntegrityError:
        return False  # another daemon's first firing of this shop came first


def claims(store: StateStore) -> dict[str, Claim]:
    """Each shop's last claimed firing: which daemon took it, and when the next is due."""
    with store.engine.connect() as con:
        rows = con.execute(select(shop_schedules)).mappings().all()
    return {
        r["shop"]: Claim(r["shop"], aware(r["next_due"]), r["claimed_by"], aware(r["claimed_at"]))  # type: ignore[arg-type]
        for r in rows
    }
