"""One run per shop at a time, across processes and hosts: a lease row in the state store.

Why: two processes syncing one shop (a daemon and a cron'd ``sync --once``, two daemons after a
deploy) would both page it, write the same orders and count each other's run as crashed. A run takes
the shop's lease before it starts, renews it while it goes on and deletes it at the end. A lease
whose holder stopped renewing (killed, its host gone) expires and is taken over; on the holder's own
host a dead pid frees it at once. Every step is one conditional statement, so two processes racing
for a free shop cannot both win, on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ordersync.errors import OrderSyncError
from ordersync.processes import alive
from ordersync.state.records import aware
from ordersync.state.store import StateStore
from ordersync.state.tables import shop_leases

log = structlog.get_logger("ordersync.lease")

LEASE_SECONDS = 60.0
"""How long a lease lasts unrenewed: a killed holder's shop is free again at most this long after."""


@dataclass(frozen=True)
class Holder:
    shop: str
    holder: str
    pid: int
    host: str
    kind: str
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        since, until = f"{self.acquired_at:%Y-%m-%d %H:%M:%S}", f"{self.expires_at:%H:%M:%S}"
        return f"pid {self.pid} on host {self.host} ({self.kind} since {since} UTC, lease to {until})"


class ShopBusy(OrderSyncError):
    """Another process is running this shop."""

    def __init__(self, holder: Holder):
        super().__init__(f"shop '{holder.shop}' is being synced by {holder.describe()}")
        self.holder = holder


def current(store: StateStore, shop: str) -> Holder | None:
    with store.engine.connect() as con:
        row = con.execute(select(shop_leases).where(shop_leases.c.shop == shop)).mappings().first()
    if row is None:
        return None
    return Holder(
        **{**row, "acquired_at": aware(row["acquired_at"]), "expires_at": aware(row["expires_at"])}  # type: ignore[arg-type]
    )


def live(store: StateStore, shop: str, now: datetime | None = None) -> Holder | None:
    """The shop's holder while its lease has not expired; None when the shop is free."""
    held = current(store, shop)
    return held if held is not None and held.expires_at > (now or datetime.now(UTC)) else None


def try_acquire(store: StateStore, shop: str, kind: str, seconds: float = LEASE_SECONDS) -> Holder | None:
    """Take the shop's lease; None when another live holder has it."""
    now = datetime.now(UTC)
    mine = Holder(
        shop, uuid.uuid4().hex, os.getpid(), socket.gethostname(), kind, now, now + timedelta(seconds=seconds)
    )
    values = {
        "shop": shop,
        "holder": mine.holder,
        "pid": mine.pid,
        "host": mine.host,
        "kind": kind,
        "acquired_at": now,
        "expires_at": mine.expires_at,
    }
    try:
        with store.engine.begin() as con:
            con.execute(insert(shop_leases).values(**values))
        return mine
    except IntegrityError:
        pass
    held = current(store, shop)
    if held is None:  # released in between: try once more from the start
        return try_acquire(store, shop, kind, seconds)
    gone = held.expires_at <= now or (held.host == mine.host and not alive(held.pid))
    if not gone:
        return None
    with store.engine.begin() as con:
        taken = con.execute(
            update(shop_leases)
            .where(shop_leases.c.shop == shop, shop_leases.c.holder == held.holder)
            .values(**values)
        ).rowcount
    if taken != 1:
        return None  # another process took it over first
    log.warning("lease.taken_over", shop=shop, previous=held.describe())
    return mine


def renew(store: StateStore, lease: Holder, seconds: float = LEASE_SECONDS) -> bool:
    """Push the lease's expiry on; False when it is no longer ours (taken over after expiring)."""
    with store.engine.begin() as con:
        return (
            con.execute(
                update(shop_leases)
                .where(shop_leases.c.shop == lease.shop, shop_leases.c.holder == lease.holder)
                .values(expires_at=datetime.now(UTC) + timedelta(seconds=seconds))
            ).rowcount
            == 1
        )


def release(store: StateStore, lease: Holder) -> None:
    with store.engine.begin() as con:
        con.execute(
            delete(shop_leases).where(shop_leases.c.shop == lease.shop, shop_leases.c.holder == lease.holder)
        )


@asynccontextmanager
async def shop_lease(
    store: StateStore, shop: str, kind: str, *, wait: float = 0.0, seconds: float = LEASE_SECONDS
) -> AsyncIterator[Holder]:
    """Hold the shop's lease for the block, renewed every third of its length. ``wait``: seconds to
    wait for a busy shop before giving up with ShopBusy (0: give up at once)."""
    deadline = asyncio.get_running_loop().time() + wait
    while (lease := await asyncio.to_thread(try_acquire, store, shop, kind, seconds)) is None:
        holder = await asyncio.to_thread(current, store, shop)
        if asyncio.get_running_loop().time() >= deadline and holder is not None:
            raise ShopBusy(holder)
        if holder is not None:
            log.info("lease.waiting", shop=shop, holder=holder.describe())
        await asyncio.sleep(min(1.0, max(seconds / 10, 0.05)))

    async def keep() -> None:
        while True:
            await asyncio.sleep(seconds / 3)
            if not await asyncio.to_thread(renew, store, lease, seconds):
                log.error(
                    "lease.lost", shop=shop, why="not renewed in time and taken over by another process"
                )
                return

    keeper = asyncio.create_task(keep())
    try:
        yield lease
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await asyncio.to_thread(release, store, lease)
