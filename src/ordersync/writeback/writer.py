"""What the outbox needs of a platform: read an order as it is now, apply one operation, find an
order an interrupted attempt created. Everything about exactly-once lives in the outbox, so each
writer stays a thin translation of operations into its platform's calls."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ordersync.models import Order
from ordersync.operations import Applied, CreateOrder, Operation


class Writer(Protocol):
    async def fetch(self, order_id: str) -> Order:
        """The order as the shop has it now, with comments, refunds and payments (``NotFoundError``
        when it does not exist). Used before a send, to validate and to record a baseline, and after
        an interrupted send, to see whether it took effect."""
        ...

    async def apply(self, op: Operation, marker: str, current: Order | None) -> Applied:
        """Send ``op`` once: no HTTP-level retries for writes that are not idempotent. Leaves
        ``marker`` wherever the platform keeps one (refund reason, order meta, ``Idempotency-Key``).
        ``current`` is the target order just fetched (None for ``CreateOrder``). Raises
        ``OperationRejected`` for what must not be sent, ``HttpError`` when the shop refuses or fails."""
        ...

    async def find_created(self, op: CreateOrder, marker: str, since: datetime) -> list[str]:
        """Orders that may be the one an earlier attempt of ``op`` created at or after ``since``: the
        one holding ``marker`` where the platform keeps one, else every order that matches what
        ``op`` sends (the outbox rules out those already linked and refuses to guess between two)."""
        ...

    async def aclose(self) -> None: ...
