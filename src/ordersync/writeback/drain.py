"""The outbox worker: applies queued operations once each, with retries, dead letters and no echo.

For each claimed operation: fetch the target order; if an earlier attempt was sent (``sent_at``),
look for its effect first and record that instead of sending again; skip what is already true;
settle a conflict with a change the target made meanwhile; commit the baseline and ``sent_at``; send
once; then, in one transaction, mark it done, remember the effect on the target's tracked state (so
its next extraction does not route it back) and, for a replication, link the two orders.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from ordersync.config import Settings
from ordersync.errors import ClientRequestError, HttpError, NotFoundError, TokenRefusedError
from ordersync.models import Order
from ordersync.operations import (
    AddComment,
    Applied,
    CancelOrder,
    CreateOrder,
    CreateRefund,
    Operation,
    OperationRejected,
    RecordPayment,
    SendInvoice,
    SetPaymentStatus,
    SetStatus,
    marker,
)
from ordersync.state import links as state_links
from ordersync.state import outbox
from ordersync.state.store import StateStore
from ordersync.writeback.effects import already_true, baseline_of, find_effect
from ordersync.writeback.observe import NoteFilter, from_order, item_id, note_filter
from ordersync.writeback.tracking import amount_sig, expect_effect, know, state_of, text_sig
from ordersync.writeback.writer import Writer

log = structlog.get_logger("ordersync.outbox")


class ClaimLost(Exception):
    """Another worker took this operation over (our lease ran out): we must not send it."""


@dataclass
class DrainStats:
    done: int = 0
    found: int = 0
    already: int = 0
    retried: int = 0
    dead: int = 0
    superseded: int = 0

    def as_dict(self) -> dict[str, int]:
        """The outcomes that happened, for a summary line."""
        return {k: v for k, v in asdict(self).items() if v}


def _summary(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, HttpError) else str(exc)


class Drainer:
    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        writers: dict[str, Writer],
        *,
        jitter: Any = random.random,
    ):
        self.settings = settings
        self.store = store
        self.writers = writers
        self.jitter = jitter
        self.stats = DrainStats()
        http = settings.http
        self.lease = timedelta(seconds=(http.retry_for + http.max_retry_after + http.timeout) * 4 + 60)
        """Long enough for the reads between two renewals (a replication's source and copy fetched
        after its send: four requests), each with every retry and Retry-After it may take; renewed
        before each operation and each send."""

    def _notes(self, shop: str) -> NoteFilter:
        return note_filter(self.settings.shop(shop))

    # -- driving ------------------------------------------------------------------------------------
    async def drain(self, ids: list[int] | None = None, *, max_rounds: int = 100) -> DrainStats:
        """Apply what is due (or just ``ids``) until nothing due is left."""
        for _ in range(max_rounds):
            rows = outbox.claim(
                self.store,
                lease=self.lease,
                limit=self.settings.sync.outbox.batch,
                ids=ids,
                shops=list(self.writers),
            )
            if not rows:
                break
            # A claim holds at most one operation per target order (the oldest), so the units of
            # a round touch different orders and may run side by side. No transaction spans an
            # await, so the state store sees them one at a time.
            limiter = asyncio.Semaphore(self.settings.sync.outbox.concurrency)
            await asyncio.gather(*(self._apply(unit, limiter) for unit in _groups(rows, self.writers)))
            if ids is not None:
                break
        return self.stats

    async def _apply(self, unit: list[outbox.OutboxRow], limiter: asyncio.Semaphore) -> None:
        async with limiter:
            if len(unit) > 1:
                await self._batch(unit)
            else:
                await self._one(unit[0])

    def _held(self, row: outbox.OutboxRow, **sending: Any) -> outbox.OutboxRow:
        held = outbox.hold(self.store, row, self.lease, **sending)
        if held is None:
            raise ClaimLost(f"operation {row.id} was taken over by another worker")
        return held

    def _readable(self, row: outbox.OutboxRow) -> Operation | None:
        try:
            return row.op
        except ValueError as exc:  # a payload this version cannot read: say so, do not stop the drain
            self._dead(row, f"unreadable operation: {exc}")
            return None

    async def _one(self, row: outbox.OutboxRow) -> None:
        ready = await self._ready(row)
        if ready is None:
            return
        row, op, current = ready
        try:
            applied = await self.writers[row.shop].apply(op, marker(row.key), current)
        except Exception as exc:
            self._failed(row, exc)
            return
        self._finish(row, op, applied, current)
        self.stats.done += 1

    async def _ready(self, row: outbox.OutboxRow) -> tuple[outbox.OutboxRow, Operation, Order] | None:
        """Everything before the send (a replication whole), its failures recorded: the row, its
        operation and the target order when there is something to send, else None."""
        op = self._readable(row)
        if op is None:
            return None
        try:
            row = self._held(row)
            if isinstance(op, CreateOrder):
                await self._create(row, op)
                return None
            prepared = await self._prepare(row, op)
        except ClaimLost as exc:
            log.warning("outbox.claim_lost", id=row.id, error=str(exc))
            return None
        except Exception as exc:
            self._failed(row, exc)
            return None
        return (prepared[0], op, prepared[1]) if prepared is not None else None

    async def _batch(self, rows: list[outbox.OutboxRow]) -> None:
        """Status changes for one shop whose writer groups them (WooCommerce ``orders/batch``): each is
        checked as alone, then the ones still to send go out in one request."""
        writer = self.writers[rows[0].shop]
        limiter = asyncio.Semaphore(self.settings.sync.outbox.concurrency)

        async def prepare(row: outbox.OutboxRow) -> tuple[outbox.OutboxRow, Operation, Order] | None:
            async with limiter:  # each reads its own order: side by side, as single operations do
                return await self._ready(row)

        ready = [r for r in await asyncio.gather(*(prepare(row) for row in rows)) if r is not None]
        if not ready:
            return
        try:
            ops = [op for _, op, _ in ready]
            results = await writer.set_statuses(ops)  # type: ignore[attr-defined]
        except Exception as exc:
            for row, _, _ in ready:
                self._failed(row, exc)
            return
        for (row, op, current), result in zip(ready, results, strict=True):
            if isinstance(result, Exception):
                self._failed(row, result)
            else:
                self._finish(row, op, result, current)
                self.stats.done += 1

    def _failed(self, row: outbox.OutboxRow, exc: Exception) -> None:
        if isinstance(exc, OperationRejected):
            self._dead(row, exc.reason)
        elif isinstance(exc, (ClientRequestError, NotFoundError, TokenRefusedError)):
            self._dead(row, _summary(exc))  # the shop refused the request itself: resending won't help
        else:
            self._retry(row, exc)

    # -- outcomes -----------------------------------------------------------------------------------
    def _dead(self, row: outbox.OutboxRow, reason: str) -> None:
        outbox.fail(self.store, row.id, reason, retry_at=None)
        self.stats.dead += 1
        log.warning("outbox.dead", id=row.id, shop=row.shop, kind=row.kind, order=row.order_id, reason=reason)

    def _retry(self, row: outbox.OutboxRow, exc: Exception) -> None:
        settings = self.settings.sync.outbox
        error = _summary(exc)
        if row.attempts >= settings.max_attempts:
            outbox.fail(self.store, row.id, f"gave up after {row.attempts} attempts: {error}", retry_at=None)
            self.stats.dead += 1
            log.warning(
                "outbox.dead", id=row.id, shop=row.shop, kind=row.kind, attempts=row.attempts, error=error
            )
            return
        delay = min(settings.backoff_max, settings.backoff_base * 2 ** (row.attempts - 1))
        delay *= 0.5 + self.jitter() / 2
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.http.max_retry_after))
        outbox.fail(self.store, row.id, error, retry_at=datetime.now(UTC) + timedelta(seconds=delay))
        self.stats.retried += 1
        log.info(
            "outbox.retry",
            id=row.id,
            shop=row.shop,
            kind=row.kind,
            attempt=row.attempts,
            in_s=round(delay, 1),
        )

    # -- updates of an existing order ---------------------------------------------------------------
    async def _prepare(self, row: outbox.OutboxRow, op: Operation) -> tuple[outbox.OutboxRow, Order] | None:
        """Everything before a send: the target as it is now, an earlier attempt's effect, a result
        already true, a conflict. Returns the target order when the operation is to be sent, with
        its baseline and ``sent_at`` committed; None when it was settled without sending."""
        writer = self.writers[row.shop]
        current = await writer.fetch(op.order_id)  # type: ignore[union-attr]
        if row.sent_at is not None:
            found = find_effect(op, current, row.baseline or {}, marker(row.key))
            if found is not None:
                self._finish(row, op, Applied(ids=found, found=True), current)
                self.stats.found += 1
                return None
            if isinstance(op, SendInvoice) and not getattr(writer, "replays_keys", False):
                # An invoice leaves no trace on the order, and a shop that does not replay the
                # Idempotency-Key would mail it twice: at most once, and said loudly.
                raise OperationRejected(
                    "the invoice was sent but the shop's answer was lost, and an invoice leaves no "
                    "trace to check, so it is not sent again; if the customer did not get it, "
                    "`ordersync outbox retry` sends it once more"
                )
        if already_true(op, current):
            self._finish(row, op, Applied(ids={}, found=True), current, already=True)
            self.stats.already += 1
            return None
        if self._loses_conflict(row, op, current):
            return None
        return self._held(row, baseline=baseline_of(current)), current

    def _finish(
        self, row: outbox.OutboxRow, op: Operation, applied: Applied, current: Order, *, already: bool = False
    ) -> None:
        result = applied.model_dump(mode="json", exclude_none=True)
        if already:
            result["already"] = True
        with self.store.engine.begin() as connection:
            outbox.complete(connection, row.id, result)
            if row.origin == "route":
                # A person's push is their change to this shop and may flow on; a routed one must not.
                states = state_links.tracked_states(connection, row.shop, [current.external_id])
                state = states.get(current.external_id) or state_of(
                    from_order(current, self._notes(row.shop))
                )
                _remember(state, op, applied)
                written = "payment_status" if isinstance(op, SetPaymentStatus) else "status"
                if (
                    isinstance(op, (SetStatus, SetPaymentStatus, CancelOrder))
                    and current.updated_at
                    and not applied.found
                ):
                    # What is read of this order stamped no later than this predates the write.
                    floors = state.get("stale_before") if isinstance(state.get("stale_before"), dict) else {}
                    state["stale_before"] = {**floors, written: current.updated_at.isoformat()}
                state_links.save_state(connection, row.shop, current.external_id, state)
        log.info(
            "outbox.done", id=row.id, shop=row.shop, kind=row.kind, order=row.order_id, found=applied.found
        )

    def _loses_conflict(self, row: outbox.OutboxRow, op: Operation, current: Order) -> bool:
        """A routed status change meets a target that changed the same field since ordersync last saw
        it (and the change has not been routed yet): the conflict policy decides, and it is recorded."""
        if (
            row.origin != "route"
            or not isinstance(op, (SetStatus, SetPaymentStatus))
            or row.source_shop is None
        ):
            return False
        field_name = "status" if isinstance(op, SetStatus) else "payment_status"
        with self.store.engine.connect() as connection:
            state = state_links.tracked_states(connection, row.shop, [current.external_id]).get(
                current.external_id
            )
        if state is None:
            return False
        now_value = (
            current.status.value
            if isinstance(op, SetStatus)
            else (current.payment_status.value if current.payment_status else None)
        )
        if state.get(field_name) == now_value:
            return False
        policy = self.settings.sync.policy(field_name)
        if policy == "latest":
            target_time = current.updated_at
            op_wins = row.changed_at is None or target_time is None or row.changed_at > target_time
        else:
            op_wins = policy != row.shop
        winner = row.source_shop if op_wins else row.shop
        with self.store.engine.begin() as connection:
            state_links.record_conflict(
                connection,
                field=field_name,
                shop_a=row.source_shop,
                order_a=row.source_order_id or "",
                value_a=op.status.value if op.status else op.value,
                changed_a=row.changed_at,
                shop_b=row.shop,
                order_b=current.external_id,
                value_b=now_value,
                changed_b=current.updated_at,
                policy=policy,
                winner_shop=winner,
                outcome=f"{winner} kept its {field_name}",
            )
            if not op_wins:
                outbox.mark_superseded(
                    connection, row.id, f"conflict: {row.shop} changed {field_name} too ({policy})"
                )
        log.warning("outbox.conflict", id=row.id, field=field_name, winner=winner, policy=policy)
        if not op_wins:
            self.stats.superseded += 1
        return not op_wins

    # -- replication ----------------------------------------------------------------------------------
    async def _create(self, row: outbox.OutboxRow, op: CreateOrder) -> None:
        writer = self.writers[row.shop]
        key_marker = marker(row.key)
        if op.order is None:
            source = self.writers.get(op.source_shop)
            if source is None:
                raise OperationRejected(f"the source shop {op.source_shop!r} is not configured")
            op = op.model_copy(update={"order": await source.fetch(op.source_order_id)})
        if row.sent_at is not None and not getattr(writer, "replays_keys", False):
            # An earlier attempt was sent and its answer lost. A shop that replays the Idempotency-Key
            # answers a resend with that first answer (the order as it was created); any other is
            # searched for what the attempt may have made.
            candidates = await writer.find_created(op, key_marker, row.sent_at - timedelta(minutes=5))
            with self.store.engine.connect() as connection:
                taken = state_links.linked_orders(connection, row.shop)
            free = [c for c in candidates if c not in taken]  # a linked one is another order's copy
            if len(free) > 1:
                raise OperationRejected(
                    f"an earlier attempt may have created this order, and orders {', '.join(free)} of shop "
                    f"{row.shop!r} all match it: check them and link or drop this operation by hand"
                )
            if free:
                await self._finish_create(row, op, Applied(ids={"order_id": free[0]}, found=True))
                self.stats.found += 1
                return
        row = self._held(row, baseline={}, payload=outbox.dump_op(op))
        applied = await writer.apply(op, key_marker, None)
        await self._finish_create(row, op, applied)
        self.stats.done += 1

    async def _finish_create(self, row: outbox.OutboxRow, op: CreateOrder, applied: Applied) -> None:
        created = applied.ids.get("order_id")
        if not created:
            raise OperationRejected("the shop answered the order creation without an order id")
        assert op.order is not None
        sent = op.order
        # The source as it is now, not as the first attempt saw it: what changed there meanwhile was
        # not routed (the order had no link yet), so the catch-up must carry it.
        source_now = op.order
        try:
            source_now = await self.writers[op.source_shop].fetch(op.source_order_id)
        except Exception as exc:
            log.warning("outbox.source_fetch_failed", shop=op.source_shop, error=_summary(exc))
        op = op.model_copy(update={"order": source_now})
        target_state: dict[str, Any] | None = None
        difference: Decimal | None = None
        answered = applied.created
        try:
            replica = await self.writers[row.shop].fetch(created)
            target_state = state_of(from_order(replica, self._notes(row.shop)))
        except Exception as exc:
            log.warning("outbox.created_fetch_failed", shop=row.shop, order=created, error=_summary(exc))
            replica = None
        if answered is not None:
            # The statuses the replica was created with, not those read back: a customer who changed
            # it in between (or while this process was down) made a change to route, not a baseline.
            at_creation = state_of(from_order(answered, self._notes(row.shop)))
            if target_state is None:
                target_state = at_creation
            target_state |= {k: at_creation[k] for k in ("status", "payment_status", "updated_at")}
        basis = answered if answered is not None else replica
        if basis is not None:
            difference = basis.total - sent.total  # against what was sent, not a later change
        if difference:
            # The target computed its own taxes or rounding: linked all the same, and said.
            log.warning(
                "outbox.replica_total_differs",
                source=f"{op.source_shop}:{op.source_order_id}",
                target=f"{row.shop}:{created}",
                source_total=str(sent.total),
                difference=str(difference),
            )
        route = next(
            (r for r in self.settings.sync.routes if r.source == op.source_shop and r.target == row.shop),
            None,
        )
        with self.store.engine.begin() as connection:
            outbox.complete(
                connection,
                row.id,
                applied.model_dump(mode="json", exclude_none=True),
                order_id=created,
                # The copy of the customer's order was needed to resend it; once created, the
                # reference is enough (the order itself is in both shops and the mirror).
                payload=outbox.dump_op(op.model_copy(update={"order": None})),
            )
            state_links.add_link(
                connection, op.source_shop, op.source_order_id, row.shop, created, total_difference=difference
            )
            if not state_links.tracked_states(connection, op.source_shop, [op.source_order_id]):
                # Linked to a third shop already: its tracked state (and expectations) stays.
                state_links.save_state(
                    connection,
                    op.source_shop,
                    op.source_order_id,
                    state_of(from_order(source_now, self._notes(op.source_shop))),
                )
            if target_state is not None and not state_links.tracked_states(connection, row.shop, [created]):
                state_links.save_state(connection, row.shop, created, target_state)
            if route is not None:
                for key, follow in _catch_up(op, row.shop, created, route.changes, self.settings):
                    outbox.enqueue(
                        connection,
                        key=key,
                        shop=row.shop,
                        op=follow,
                        origin="route",
                        source_shop=op.source_shop,
                        source_order_id=op.source_order_id,
                        changed_at=source_now.updated_at,
                    )
        log.info(
            "outbox.replicated",
            id=row.id,
            source=f"{op.source_shop}/{op.source_order_id}",
            target=f"{row.shop}/{created}",
        )


def _groups(rows: list[outbox.OutboxRow], writers: dict[str, Writer]) -> list[list[outbox.OutboxRow]]:
    """Rows in order, with consecutive status changes to a shop whose writer batches them grouped
    (at most 100, WooCommerce's batch limit)."""
    groups: list[list[outbox.OutboxRow]] = []
    for row in rows:
        batchable = row.kind == "set_status" and hasattr(writers.get(row.shop), "set_statuses")
        last = groups[-1] if groups else None
        if (
            batchable
            and last is not None
            and last[0].kind == "set_status"
            and last[0].shop == row.shop
            and len(last) < 100
            and all(r.order_id != row.order_id for r in last)
        ):
            last.append(row)
        else:
            groups.append([row])
    return groups


def _catch_up(
    op: CreateOrder, target: str, created: str, changes: list[str], settings: Settings
) -> list[tuple[str, Operation]]:
    """What the new order lacks that its route carries: the source's status, payments, refunds and
    comments as they were when it was copied (a new order starts pending, unpaid, with no comments).
    Keys are the ones routing would use, so nothing is queued twice."""
    notes = note_filter(settings.shop(op.source_shop))
    from ordersync.mapping.statuses import platform_value

    order = op.order
    assert order is not None
    platform = next(s.platform for s in settings.shops if s.name == target)
    prefix = f"{op.source_shop}/{op.source_order_id}"
    out: list[tuple[str, Operation]] = []
    value = platform_value("order_status", platform, order.status.value)
    if "status" in changes and value is not None and order.status.value != "pending":
        stamp = order.updated_at.isoformat() if order.updated_at else "-"
        out.append(
            (
                f"{prefix}/status/{order.status.value}@{stamp}->{target}",
                SetStatus(order_id=created, value=value, status=order.status),
            )
        )
    if "payments" in changes:
        for payment in order.payments:
            if payment.status.value == "paid":
                out.append(
                    (
                        f"{prefix}/payment/{item_id(payment.external_id, amount=payment.amount)}->{target}",
                        RecordPayment(
                            order_id=created,
                            amount=payment.amount,
                            currency=order.currency,
                            paid_at=payment.paid_at,
                            transaction_id=payment.transaction_id,
                        ),
                    )
                )
    label = order.number or order.external_id
    if "refunds" in changes:
        for refund in order.refunds:
            out.append(
                (
                    f"{prefix}/refund/{item_id(refund.external_id, amount=refund.amount)}->{target}",
                    CreateRefund(
                        order_id=created,
                        amount=refund.amount,
                        currency=order.currency,
                        reason=refund.reason or f"Refund of {op.source_shop} order {label}",
                    ),
                )
            )
    if "comments" in changes:
        for comment in order.comments:
            if not notes.routed(order.platform.value, comment.author, comment.text):
                continue
            out.append(
                (
                    f"{prefix}/comment/{item_id(comment.external_id, text=comment.text)}->{target}",
                    AddComment(
                        order_id=created, text=comment.text, customer_visible=comment.customer_visible
                    ),
                )
            )
    return out


def _remember(state: dict[str, Any], op: Operation, applied: Applied) -> None:
    """Record on the target's tracked state what this operation changed there."""
    if isinstance(op, SetStatus) and op.status is not None:
        state["status"] = op.status.value
    elif isinstance(op, CancelOrder):
        state["status"] = "cancelled"
    elif isinstance(op, SetPaymentStatus) and op.status is not None:
        state["payment_status"] = op.status.value
    elif isinstance(op, AddComment):
        if applied.ids.get("comment_id"):
            know(state, "comments", applied.ids["comment_id"])
        else:
            expect_effect(state, "comment", text_sig(op.text))
    elif isinstance(op, CreateRefund):
        if applied.ids.get("refund_id"):
            know(state, "refunds", applied.ids["refund_id"])
        else:
            expect_effect(state, "refund", amount_sig(op.amount))
    elif isinstance(op, RecordPayment):
        if applied.ids.get("payment_id"):
            know(state, "payments", applied.ids["payment_id"])
        else:
            expect_effect(state, "payment", amount_sig(op.amount))
