"""One run per shop at a time, across processes and hosts: a lease row in the state store.

Why: two processes syncing one shop (a daemon and a cron'd ``sync --once``, two daemons after a
deploy) would both page it, write the same orders and count each other's run as crashed. A run takes
the shop's lease before it starts, renews it while it goes on and deletes it at the end. A lease
whose holder stopped renewing (killed, its host gone) expires and is taken over; on the holder's own
host a dead pid frees it at once. Every step is one conditional statement, so two processes racing
for a free shop cannot both win, on SQLite as on PostgreSQL.

A holder that cannot prove it still holds the lease stops: when a renewal fails (taken over) or has
not come back before the lease would expire (a stalled database, a paused process), the block is
cancelled and ``LeaseLost`` raised, so the taker-over never runs alongside it. Hosts' clocks must
agree to well within a lease period (NTP), since expiry is written by one and read by another.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
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

_KEEPERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ordersync-lease")
"""Renewals run on threads of their own: queued behind the work on asyncio's default pool (mirror
writes, mapping, routing), they waited past the lease's end with 15 shops running in one daemon, and
every lease was lost."""


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


LOST = "lease lost"
"""The message the body's cancellation carries, so a run's record can tell it from a shutdown."""


def lost_lease(exc: BaseException) -> str | None:
    """Why the lease was lost, when ``exc`` is the cancellation ``shop_lease`` sent its body."""
    message = exc.args[0] if isinstance(exc, asyncio.CancelledError) and exc.args else None
    return message if isinstance(message, str) and message.startswith(LOST) else None


class LeaseLost(OrderSyncError):
    """The lease could not be renewed in time: the work under it was stopped, and resumes from its
    last checkpoint in the next run."""

    def __init__(self, lease: Holder, why: str):
        super().__init__(f"shop '{lease.shop}': lease lost ({why}); the run was stopped")
        self.lease = lease


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
    store: StateStore, shop: str, kind: str, *, wait: float = 0.0, seconds: float | None = None
) -> AsyncIterator[Holder]:
    """Hold the shop's lease for the block, renewed every third of its length. ``wait``: seconds to
    wait for a busy shop before giving up with ShopBusy (0: give up at once)."""
    seconds = LEASE_SECONDS if seconds is None else seconds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        asked = loop.time()
        lease = await asyncio.to_thread(try_acquire, store, shop, kind, seconds)
        if lease is not None:
            break
        holder = await asyncio.to_thread(current, store, shop)
        if loop.time() >= deadline and holder is not None:
            raise ShopBusy(holder)
        if holder is not None:
            log.info("lease.waiting", shop=shop, holder=holder.describe())
        await asyncio.sleep(min(1.0, max(seconds / 10, 0.05)))
    body = asyncio.current_task()
    assert body is not None
    lost: list[str] = []

    async def keep() -> None:
        # By this process's clock, and early by a margin: the work must have stopped (cancelled at
        # its next await) before anyone else may take the lease.
        margin = min(seconds / 10, 2.0)
        expires = asked + seconds - margin
        pause = seconds / 3
        while True:
            await asyncio.sleep(min(pause, max(expires - loop.time(), 0.0)))
            began = loop.time()
            why = "no renewal came back before the lease expired"
            try:
                async with asyncio.timeout(max(expires - began, 0.0)):
                    renewal = functools.partial(renew, store, lease, seconds)
                    ours = await loop.run_in_executor(_KEEPERS, renewal)
                why = "not renewed in time and taken over by another process"
            except TimeoutError:
                ours = False
            except Exception as exc:  # the database away for a moment: try again while the lease lasts
                log.warning("lease.renew_failed", shop=shop, error=str(exc))
                ours = None if loop.time() < expires else False
            if ours is None:
                pause = min(1.0, seconds / 10)
                continue
            if not ours:
                log.error("lease.lost", shop=shop, why=why)
                lost.append(why)
                body.cancel(f"{LOST}: {why}")
                return
            expires, pause = began + seconds - margin, seconds / 3

    keeper = asyncio.create_task(keep())
    try:
        yield lease
    except asyncio.CancelledError:
        if not lost or body.uncancel() > 0:  # a shutdown's cancel as well: that one goes on
            raise
        raise LeaseLost(lease, lost[0]) from None
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await asyncio.to_thread(release, store, lease)
