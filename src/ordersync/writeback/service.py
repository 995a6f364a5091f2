"""Write-back as the commands and the daemon use it: route the shops just synced, drain the outbox,
and show the result in the mirror."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from ordersync.config import Settings, ShopConfig, WebCommanderShop
from ordersync.errors import OrderSyncError
from ordersync.http import HttpPolicy
from ordersync.mirror.store import Mirror
from ordersync.operations import Operation, RecordPayment, stamped
from ordersync.state import links as state_links
from ordersync.state import outbox
from ordersync.state.leases import Holder, shop_lease
from ordersync.state.store import StateStore
from ordersync.writeback.drain import Drainer, DrainStats
from ordersync.writeback.routing import RouteStats, route_shop
from ordersync.writeback.writer import Writer

log = structlog.get_logger("ordersync.writeback")


def open_writer(
    shop: ShopConfig, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> Writer:
    policy = HttpPolicy(settings.http, shop=shop.name)
    if isinstance(shop, WebCommanderShop):
        from ordersync.platforms.webcommander.writer import WebCommanderWriter

        return WebCommanderWriter(shop, policy, transport=transport)
    from ordersync.platforms.woocommerce.writer import WooCommerceWriter

    return WooCommerceWriter(shop, policy, transport=transport)


@asynccontextmanager
async def open_writers(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[dict[str, Writer]]:
    """A writer per configured shop: a replication reads its source through one."""
    async with AsyncExitStack() as stack:
        writers: dict[str, Writer] = {}
        for shop in settings.shops:
            writer = open_writer(shop, settings, transport)
            stack.push_async_callback(writer.aclose)
            writers[shop.name] = writer
        yield writers


WRITE_BACK = "(write-back)"
"""The lease that makes routing and draining one at a time across every process sharing the state
store (no shop name can be this: names are letters, digits and ``_.-``)."""


def writeback_lease(store: StateStore, kind: str, wait: float) -> AbstractAsyncContextManager[Holder]:
    """Routing and draining both move tracked order states: one process at a time does either, as one
    daemon's own lock already makes them one task at a time. ShopBusy when ``wait`` runs out."""
    return shop_lease(store, WRITE_BACK, kind, wait=wait)


async def drain_outbox(
    settings: Settings,
    store: StateStore,
    *,
    ids: list[int] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    wait: float = 60.0,
) -> DrainStats:
    """Apply what is due (or just ``ids``) through a writer per shop."""
    async with writeback_lease(store, "drain", wait), open_writers(settings, transport) as writers:
        return await Drainer(settings, store, writers).drain(ids=ids)


@dataclass
class WriteBackStats:
    routed: dict[str, RouteStats] = field(default_factory=dict)
    drained: DrainStats = field(default_factory=DrainStats)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        queued = sum(r.queued for r in self.routed.values())
        conflicts = sum(r.conflicts for r in self.routed.values())
        parts = [f"{queued} queued"] if queued else []
        if conflicts:
            parts.append(f"{conflicts} conflict(s)")
        parts += [f"{v} {k}" for k, v in self.drained.as_dict().items()]
        parts += self.errors
        return ", ".join(parts) if parts else "nothing to write"


class OperationKeyReused(OrderSyncError):
    """A push under a key that already names a different operation."""


def has_work(settings: Settings, store: StateStore) -> bool:
    if settings.sync.routes:
        return True
    return bool(outbox.rows(store, statuses=list(outbox.OPEN), limit=1))


async def write_back(
    settings: Settings,
    store: StateStore,
    mirror: Mirror,
    shops: list[ShopConfig],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> WriteBackStats:
    """Route what ``shops`` changed, apply what is due, and publish links and outcomes to the mirror."""
    stats = WriteBackStats()
    async with writeback_lease(store, "route", 60.0):
        for shop in shops:
            try:
                # In a thread, so the lease's renewal runs while routing goes on.
                stats.routed[shop.name] = await asyncio.to_thread(route_shop, settings, store, shop)
            except Exception as exc:
                stats.errors.append(f"routing {shop.name}: {type(exc).__name__}: {exc}")
                log.error("writeback.routing_failed", shop=shop.name, error=str(exc), exc_info=True)
    stats.drained = await drain_outbox(settings, store, transport=transport)
    publish(store, mirror)
    return stats


async def push(
    settings: Settings,
    store: StateStore,
    shop: str,
    op: Operation,
    *,
    key: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> outbox.OutboxRow:
    """A person's operation through the same outbox: queued under ``key`` (a script re-running with
    the same key gets the first outcome, never a second effect) and applied now."""
    import uuid

    key = key or f"manual/{uuid.uuid4()}"
    with store.engine.begin() as connection:
        outbox.enqueue(connection, key=key, shop=shop, op=stamped(op), origin="manual")
        row = outbox.by_key(connection, key)
    assert row is not None
    if row.shop != shop or _unstamped(row.payload, op) != outbox.dump_op(op):
        raise OperationKeyReused(
            f"idempotency key {key!r} was used for another operation (#{row.id}: {describe(row)} "
            f"to {row.shop}); use a new key"
        )
    if row.status in outbox.OPEN:
        await drain_outbox(settings, store, ids=[row.id], transport=transport)
    with store.engine.connect() as connection:
        final = outbox.get(connection, row.id)
    assert final is not None
    return final


def _unstamped(payload: dict[str, Any], op: Operation) -> dict[str, Any]:
    """The queued payload as the person asked for it: without the time ``stamped`` added."""
    if isinstance(op, RecordPayment) and op.paid_at is None:
        return {k: v for k, v in payload.items() if k != "paid_at"}
    return payload


def describe(row: outbox.OutboxRow) -> str:
    """A short human description of an operation: 'refund 12.50 EUR', 'status completed'."""
    p = row.payload
    kind = row.kind
    if kind == "set_status":
        return f"status {p.get('value')}"
    if kind == "set_payment_status":
        return f"payment status {p.get('value')}"
    if kind == "add_comment":
        text = str(p.get("text", ""))
        shown = text if len(text) <= 40 else text[:37] + "..."
        return f"{'customer ' if p.get('customer_visible') else ''}comment {shown!r}"
    if kind == "create_refund":
        return f"refund {p.get('amount')} {p.get('currency') or ''}".strip()
    if kind == "record_payment":
        return f"payment {p.get('amount')} {p.get('currency') or ''}".strip()
    if kind == "create_order":
        return f"replicate {p.get('source_shop')}/{p.get('source_order_id')}"
    return kind.replace("_", " ")


def publish(store: StateStore, mirror: Mirror) -> None:
    """Copy links, operations and conflicts into the mirror (small tables, replaced whole)."""
    with store.engine.connect() as connection:
        links = [vars(link) for link in state_links.all_links(connection)]
        conflicts = state_links.all_conflicts(connection)
    operations = [
        {
            "id": row.id,
            "idempotency_key": row.key,
            "shop": row.shop,
            "kind": row.kind,
            "order_id": row.order_id,
            "origin": row.origin,
            "source_shop": row.source_shop,
            "source_order_id": row.source_order_id,
            "status": row.status,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "result": row.result,  # the mirror writes it as JSON text
            "summary": describe(row),
            "created_at": row.created_at,
            "next_attempt_at": row.next_attempt_at,
            "done_at": row.done_at,
        }
        for row in outbox.rows(store)
    ]
    try:
        mirror.write_sync_state(links, operations, conflicts)
    except Exception as exc:
        log.warning("writeback.publish_failed", error=str(exc))
