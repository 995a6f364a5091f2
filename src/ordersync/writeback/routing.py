"""Routing: what changed in one shop's orders becomes operations queued for the shops it is linked to.

Runs after a shop's sync. It reads the orders whose versions changed since the last routing (the
state store's feed, ``state.versions``, from the cursor ``routing``; never the mirror, which may be
gone or rebuilt), compares each linked order with its tracked state, and queues one operation per
change and route, under a key derived from (shop, order, change, target): a change
seen twice is queued once. Tracked states, the queued operations and the cursor move in one
transaction, so a crash re-routes a chunk whole or not at all.

New orders created at or after a route's ``replicate_since`` (by default the first time the route ran)
are queued for replication. Orders ordersync created (link targets) are linked, so they never travel
back. Two shops changing a linked order's status at once is settled here when both changes are
queued, and in the outbox when the target's change has not been extracted yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError
from sqlalchemy import Connection

from ordersync.config import Route, Settings, ShopConfig
from ordersync.mapping.statuses import platform_value
from ordersync.models import OrderStatus, PaymentStatus
from ordersync.operations import (
    AddComment,
    CancelOrder,
    CreateOrder,
    CreateRefund,
    Operation,
    RecordPayment,
    SetPaymentStatus,
    SetStatus,
    stamped,
)
from ordersync.state import links as state_links
from ordersync.state import outbox, records, versions
from ordersync.state.store import StateStore
from ordersync.writeback.observe import Observed, from_version, note_filter
from ordersync.writeback.tracking import Changes, InFlight, amount_sig, diff, state_of, text_sig

log = structlog.get_logger("ordersync.routing")

ROUTING = "routing"
CHUNK = 500
_NEVER = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass
class RouteStats:
    examined: int = 0
    queued: int = 0
    echoes: int = 0
    conflicts: int = 0
    skipped: int = 0
    deferred: bool = False

    def as_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in vars(self).items() if v}


def _op_of(row: outbox.OutboxRow) -> Operation | None:
    """A queued operation, or None for a payload this version cannot read (the drain dead-letters it)."""
    try:
        return row.op
    except ValueError:
        return None


def _field_value(op: Operation) -> str:
    """The canonical value a status-like operation sets (its platform value when it has none)."""
    if isinstance(op, CancelOrder):
        return "cancelled"
    status = getattr(op, "status", None)
    return status.value if status is not None else str(getattr(op, "value", ""))


def route_shop(settings: Settings, store: StateStore, shop: ShopConfig) -> RouteStats:
    """Queue the operations this shop's latest changes call for (see the module docstring)."""
    stats = RouteStats()
    outgoing = [r for r in settings.sync.routes if r.source == shop.name]
    incoming = [r for r in settings.sync.routes if r.target == shop.name]
    if not outgoing and not incoming:
        return stats
    now = datetime.now(UTC).replace(microsecond=0)  # shops stamp orders to the second
    cursor = records.get_cursor(store, shop.name, ROUTING) or {}
    since = dict(cursor.get("since", {}))
    for route in outgoing:
        if "orders" in route.changes and route.target not in since:
            since[route.target] = (route.replicate_since or now).astimezone(UTC).isoformat()
    # A cursor from before the feed (a mirror position) starts the feed from its beginning: orders
    # routed already match their tracked states, and a create seen twice has one key.
    after = (int(cursor.get("seq") or 0), str(cursor.get("order_id") or "")) if "seq" in cursor else (0, "")
    with store.engine.connect() as connection:
        if outbox.unresolved_creates(connection, shop.name):
            # An order ordersync sent here may exist unlinked: wait until the outbox has resolved it.
            stats.deferred = True
            log.info("routing.deferred", shop=shop.name, reason="a replication into this shop is unresolved")
            return stats
        linked = state_links.linked_orders(connection, shop.name)
    replicating = {
        r.target: datetime.fromisoformat(since[r.target]) for r in outgoing if "orders" in r.changes
    }
    created_since = min(replicating.values(), default=_NEVER)
    notes = note_filter(shop)
    router = _Router(settings, shop, outgoing, replicating, stats)
    moved = False
    while chunk := versions.changed_since(store, shop.platform, shop.name, after, CHUNK):
        moved = True
        after = (chunk[-1].seq, chunk[-1].order_id)
        observed = [
            from_version(v, notes) for v in chunk if v.order_id in linked or v.created_at >= created_since
        ]
        with store.engine.begin() as connection:
            # The cursor first: on SQLite the first write takes the database's write lock, so the
            # tracked states read next cannot change under this transaction (the outbox writes them).
            position = {"seq": after[0], "order_id": after[1], "since": since}
            records.set_cursor_in(connection, shop.name, ROUTING, position)
            router.route(connection, observed, linked)
    if not moved:
        records.set_cursor(store, shop.name, ROUTING, {"seq": after[0], "order_id": after[1], "since": since})
    if stats.queued or stats.conflicts:
        log.info("routing.done", shop=shop.name, **stats.as_dict())
    return stats


class _Router:
    def __init__(
        self,
        settings: Settings,
        shop: ShopConfig,
        outgoing: list[Route],
        replicating: dict[str, datetime],
        stats: RouteStats,
    ):
        self.settings = settings
        self.shop = shop
        self.outgoing = outgoing
        self.replicating = replicating
        self.stats = stats
        self.platforms = {s.name: s.platform for s in settings.shops}

    def route(self, connection: Connection, chunk: list[Observed], linked: dict[str, dict[str, str]]) -> None:
        ids = [o.order_id for o in chunk if o.order_id in linked]
        states = state_links.tracked_states(connection, self.shop.name, ids)
        for observed in chunk:
            self.stats.examined += 1
            counterparts = linked.get(observed.order_id, {})
            for route in self.outgoing:
                if (
                    route.target in self.replicating
                    and route.target not in counterparts
                    and observed.created_at >= self.replicating[route.target]
                ):
                    self._queue(
                        connection,
                        route,
                        observed,
                        f"create->{route.target}",
                        CreateOrder(
                            source_shop=self.shop.name,
                            source_order_id=observed.order_id,
                            products=route.products,
                            product_ids=route.product_ids,
                        ),
                    )
            if not counterparts:
                continue
            previous = states.get(observed.order_id)
            if previous is None:
                state_links.save_state(connection, self.shop.name, observed.order_id, state_of(observed))
                continue
            changes, state = diff(previous, observed, self._inflight(connection, observed.order_id))
            self.stats.echoes += changes.echoes
            if changes:
                state["seq"] = int(previous.get("seq", 0)) + 1  # names this change in the keys below
                for route in self.outgoing:
                    target_id = counterparts.get(route.target)
                    if target_id is not None:
                        self._route_changes(connection, route, observed, target_id, changes, state["seq"])
            state_links.save_state(connection, self.shop.name, observed.order_id, state)

    def _inflight(self, connection: Connection, order_id: str) -> InFlight:
        """Operations still queued for this order: if its new state shows one, that is our own write."""
        statuses, payment_statuses, comments, refunds, payments = set(), set(), set(), set(), set()
        for row in outbox.open_for(connection, self.shop.name, order_id):
            op = _op_of(row)
            if isinstance(op, SetStatus) and op.status is not None:
                statuses.add(op.status.value)
            elif isinstance(op, CancelOrder):
                statuses.add("cancelled")
            elif isinstance(op, SetPaymentStatus) and op.status is not None:
                payment_statuses.add(op.status.value)
            elif isinstance(op, AddComment):
                comments.add(text_sig(op.text))
            elif isinstance(op, CreateRefund):
                refunds.add(amount_sig(op.amount))
            elif isinstance(op, RecordPayment):
                payments.add(amount_sig(op.amount))
        return InFlight(
            frozenset(statuses),
            frozenset(payment_statuses),
            frozenset(comments),
            frozenset(refunds),
            frozenset(payments),
        )

    def _route_changes(
        self,
        connection: Connection,
        route: Route,
        observed: Observed,
        target_id: str,
        changes: Changes,
        seq: int,
    ) -> None:
        """One operation per change for this route. A value no operation can carry (a zero refund,
        which WooCommerce allows for restocking; an empty comment) is skipped and logged: it must not
        stop the rest of the order, or the shop's routing."""
        for change, build in self._operations(route, observed, target_id, changes, seq):
            try:
                op = build()
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"])
                self._skip(route, observed, f"{change}: {where}: {problem['msg']}")
                continue
            if op is None:
                continue
            if isinstance(op, (SetStatus, SetPaymentStatus, CancelOrder)):
                self._status_op(connection, route, observed, change, op)
            else:
                self._queue(connection, route, observed, f"{change}->{route.target}", op)

    def _operations(
        self, route: Route, observed: Observed, target_id: str, changes: Changes, seq: int
    ) -> list[tuple[str, Callable[[], Operation | None]]]:
        platform = self.platforms[route.target]
        out: list[tuple[str, Callable[[], Operation | None]]] = []
        if changes.status is not None:
            new = changes.status[1]
            if new == OrderStatus.CANCELLED.value and "cancel" in route.changes:
                out.append((f"cancel/{seq}", lambda: CancelOrder(order_id=target_id)))
            elif "status" in route.changes:
                value = platform_value("order_status", platform, new)
                if value is None:
                    self._skip(route, observed, f"status {new!r} has no {platform} value in statuses.yaml")
                else:
                    out.append(
                        (
                            f"status/{seq}/{new}",
                            lambda: SetStatus(order_id=target_id, value=value, status=OrderStatus(new)),
                        )
                    )
        if changes.payment_status is not None and "payment_status" in route.changes:
            paid = changes.payment_status[1]
            pvalue = platform_value("payment_status", platform, paid) if paid else None
            if pvalue is None or paid is None:
                self._skip(route, observed, f"payment status {paid!r} has no {platform} value")
            else:
                out.append(
                    (
                        f"payment_status/{seq}/{paid}",
                        lambda: SetPaymentStatus(
                            order_id=target_id, value=pvalue, status=PaymentStatus(paid)
                        ),
                    )
                )
        # Payments before refunds: a refund needs the payment it returns, and operations on one
        # order are applied in the order they are queued.
        if "payments" in route.changes:
            for payment_id, amount, _gateway in changes.payments:
                out.append(
                    (
                        f"payment/{payment_id}",
                        lambda amount=amount: stamped(
                            RecordPayment(order_id=target_id, amount=amount, currency=observed.currency)
                        ),
                    )
                )
        if "refunds" in route.changes:
            label = observed.number or observed.order_id
            for refund_id, amount, reason in changes.refunds:
                out.append(
                    (
                        f"refund/{refund_id}",
                        lambda amount=amount, reason=reason: CreateRefund(
                            order_id=target_id,
                            amount=amount,
                            currency=observed.currency,
                            reason=reason or f"Refund of {self.shop.name} order {label}",
                        ),
                    )
                )
        if "comments" in route.changes:
            for comment_id, text, visible in changes.comments:
                out.append(
                    (
                        f"comment/{comment_id}",
                        lambda text=text, visible=visible: AddComment(
                            order_id=target_id, text=text, customer_visible=visible
                        ),
                    )
                )
        return out

    def _status_op(
        self, connection: Connection, route: Route, observed: Observed, change: str, op: Operation
    ) -> None:
        field = "payment_status" if isinstance(op, SetPaymentStatus) else "status"
        value = _field_value(op)
        kinds = ("set_payment_status",) if field == "payment_status" else ("set_status", "cancel_order")
        target_id = op.order_id  # type: ignore[union-attr]
        for older in outbox.open_for(connection, route.target, target_id):
            if older.kind in kinds and older.source_shop == self.shop.name:
                # A newer change of the same field replaces one not sent yet.
                outbox.supersede(connection, older.id, f"replaced by a newer {field} change")
        wins = self._settle(connection, route, observed, op, field, value)
        self._queue(
            connection,
            route,
            observed,
            f"{change}->{route.target}",
            op,
            status=outbox.PENDING if wins else outbox.SUPERSEDED,
            reason=None if wins else f"conflict: {route.target} changed {field} too",
        )

    def _settle(
        self, connection: Connection, route: Route, observed: Observed, op: Operation, field: str, value: str
    ) -> bool:
        """Both shops changed this field and both changes are queued: the policy picks one."""
        kinds = ("set_payment_status",) if field == "payment_status" else ("set_status", "cancel_order")
        wins = True
        for other in outbox.open_for(connection, self.shop.name, observed.order_id):
            if other.kind not in kinds or other.source_shop != route.target or other.origin != "route":
                continue
            policy = self.settings.sync.policy(field)
            if policy == "latest":
                mine = observed.updated_at
                wins = mine is not None and (other.changed_at is None or mine > other.changed_at)
            else:
                wins = policy == self.shop.name
            winner = self.shop.name if wins else route.target
            other_op = _op_of(other)
            other_value = (
                "cancelled" if isinstance(other_op, CancelOrder) else getattr(other_op, "value", None)
            )
            state_links.record_conflict(
                connection,
                field=field,
                shop_a=self.shop.name,
                order_a=observed.order_id,
                value_a=value,
                changed_a=observed.updated_at,
                shop_b=route.target,
                order_b=getattr(op, "order_id", ""),
                value_b=other_value,
                changed_b=other.changed_at,
                policy=policy,
                winner_shop=winner,
                outcome=f"{winner} kept its {field}",
            )
            self.stats.conflicts += 1
            log.warning(
                "routing.conflict", field=field, order=observed.order_id, winner=winner, policy=policy
            )
            if wins:
                # One already being sent cannot be stopped; this change is queued after it.
                outbox.supersede(connection, other.id, f"conflict: {self.shop.name} won ({policy})")
        return wins

    def _queue(
        self,
        connection: Connection,
        route: Route,
        observed: Observed,
        change: str,
        op: Operation,
        *,
        status: str = outbox.PENDING,
        reason: str | None = None,
    ) -> None:
        key = f"{self.shop.name}/{observed.order_id}/{change}"
        queued = outbox.enqueue(
            connection,
            key=key,
            shop=route.target,
            op=op,
            origin="route",
            source_shop=self.shop.name,
            source_order_id=observed.order_id,
            changed_at=observed.updated_at,
            status=status,
            last_error=reason,
        )
        if queued is not None and status == outbox.PENDING:
            self.stats.queued += 1

    def _skip(self, route: Route, observed: Observed, why: str) -> None:
        self.stats.skipped += 1
        log.info(
            "routing.skipped", shop=self.shop.name, order=observed.order_id, target=route.target, why=why
        )
