"""A linked order's tracked state, and what changed since: the heart of routing and of echo
suppression.

The state holds the statuses last seen, the ids of the comments, refunds and payments already known,
and ``expect``: effects ordersync itself wrote into this order that its next extraction will show.
A new comment, refund or payment matching an expectation is ordersync's own write coming back: it
consumes the expectation and is not routed, so nothing echoes back to the shop it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from ordersync.writeback.observe import Observed, amount_sig, text_sig

EXPECT_KINDS = ("comment", "refund", "payment")


def state_of(observed: Observed) -> dict[str, Any]:
    """The tracked state of an order seen for the first time: everything on it counts as known."""
    return {
        "status": observed.status,
        "payment_status": observed.payment_status,
        "updated_at": observed.updated_at.isoformat() if observed.updated_at else None,
        "comments": [c[0] for c in observed.comments],
        "refunds": [r[0] for r in observed.refunds],
        "payments": [p[0] for p in observed.payments],
        "expect": {kind: [] for kind in EXPECT_KINDS},
    }


@dataclass
class Changes:
    status: tuple[str | None, str] | None = None
    payment_status: tuple[str | None, str | None] | None = None
    comments: list[tuple[str, str, bool]] = field(default_factory=list)
    refunds: list[tuple[str, Decimal, str | None]] = field(default_factory=list)
    payments: list[tuple[str, Decimal, str | None]] = field(default_factory=list)
    echoes: int = 0

    def __bool__(self) -> bool:
        return bool(self.status or self.payment_status or self.comments or self.refunds or self.payments)


@dataclass(frozen=True)
class InFlight:
    """Effects of operations still queued for this order: a change equal to one is not routed back."""

    statuses: frozenset[str] = frozenset()
    payment_statuses: frozenset[str] = frozenset()
    comments: frozenset[str] = frozenset()
    refunds: frozenset[str] = frozenset()
    payments: frozenset[str] = frozenset()


def diff(
    previous: dict[str, Any], now: Observed, inflight: InFlight = InFlight()
) -> tuple[Changes, dict[str, Any]]:
    """The changes since ``previous`` (echoes removed) and the state to keep from now on."""
    changes = Changes()
    state = state_of(now)
    expect = {kind: list(previous.get("expect", {}).get(kind, [])) for kind in EXPECT_KINDS}

    state["seq"] = int(previous.get("seq", 0))
    for collection in ("comments", "refunds", "payments"):
        # Known stays known: a read older than ordersync's last write lacks what that write made.
        state[collection] = list(dict.fromkeys([*previous.get(collection, []), *state[collection]]))
    floors = previous.get("stale_before") or {}
    for field_name, floor in floors.items():
        if now.updated_at is not None and now.updated_at <= datetime.fromisoformat(floor):
            # Read before ordersync's write of this field landed (a sync that overlapped the outbox):
            # the value is older than what is known, not a change to route back.
            state[field_name] = previous.get(field_name)
            state.setdefault("stale_before", {})[field_name] = floor
            now = replace(now, **{field_name: previous.get(field_name)})
    if now.status != previous.get("status"):
        if now.status in inflight.statuses:
            changes.echoes += 1
        else:
            changes.status = (previous.get("status"), now.status)
    if now.payment_status != previous.get("payment_status"):
        if now.payment_status in inflight.payment_statuses:
            changes.echoes += 1
        else:
            changes.payment_status = (previous.get("payment_status"), now.payment_status)

    def fresh(items: list[Any], known: list[str], kind: str, sig: Any, pending: frozenset[str]) -> list[Any]:
        seen = set(known)
        out = []
        for item in items:
            if item[0] in seen:
                continue
            signature = sig(item)
            if signature in expect[kind]:
                expect[kind].remove(signature)
                changes.echoes += 1
            elif signature in pending:
                changes.echoes += 1
            else:
                out.append(item)
        return out

    changes.comments = fresh(
        now.comments, previous.get("comments", []), "comment", lambda c: text_sig(c[1]), inflight.comments
    )
    changes.refunds = fresh(
        now.refunds, previous.get("refunds", []), "refund", lambda r: amount_sig(r[1]), inflight.refunds
    )
    changes.payments = fresh(
        now.payments, previous.get("payments", []), "payment", lambda p: amount_sig(p[1]), inflight.payments
    )
    state["expect"] = expect
    return changes, state


def expect_effect(state: dict[str, Any], kind: str, signature: str) -> None:
    state.setdefault("expect", {k: [] for k in EXPECT_KINDS}).setdefault(kind, []).append(signature)


def know(state: dict[str, Any], collection: str, item_id: str) -> None:
    """An id ordersync created on this order: known already, so never routed."""
    items = state.setdefault(collection, [])
    if item_id not in items:
        items.append(item_id)
