"""How a run's batches reach the state store's order versions and the mirror, and what it may trust.

The state store holds each order's latest version (``state.versions``); the mirror is a projection of
it. Each batch gets the shop's next number: the mirror records it in the batch's own transaction
(``mirror_batches``), then the state store records the versions and the number in one transaction.
A crash between the two leaves the mirror one batch ahead, which the next run sees and repairs; never
the state ahead of the mirror, which would hide orders from it.

A run trusts the versions' hashes to skip unchanged orders only while the mirror follows them: the
state's cursor names this mirror (by its id) and the mirror's last number is at least the state's.
Otherwise (the mirror deleted, replaced, restored from a copy, or a refill cut short) every order is
mapped and written, and a run that read the whole shop names the mirror again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection

from ordersync.mirror.store import Mirror
from ordersync.state import versions
from ordersync.state.store import StateStore

log = structlog.get_logger("ordersync.sync")


@dataclass
class Projection:
    store: StateStore
    mirror: Mirror
    platform: str
    shop: str
    known: dict[str, str]
    """Content hashes the prefilter may skip on (empty when the mirror does not follow the state)."""
    fresh_ok: bool
    """Orders not in ``known`` are not in the mirror either, so a page of them is inserted as new."""
    trusted: bool
    """The mirror holds every version the state store records for the shop."""
    seq: int
    """The last batch number given."""

    @classmethod
    def plan(cls, store: StateStore, mirror: Mirror, platform: str, shop: str) -> Projection:
        """What the run may trust; called before its first page (blocking: in a thread)."""
        cursor = versions.projection(store, shop)
        stated, owner = int(cursor.get("seq") or 0), cursor.get("mirror")
        mirror_id, mirrored, holds = mirror.projection(platform, shop)
        seq = max(stated, mirrored)
        if owner is not None and owner == mirror_id and mirrored >= stated:
            # Ahead by a batch when a run stopped between the two commits: its orders are in the
            # mirror but not in the versions, so none of the run's pages may be taken for new.
            known = versions.known_hashes(store, platform, shop)
            return cls(store, mirror, platform, shop, known, mirrored == stated, True, seq)
        if owner is not None or stated:
            log.warning(
                "sync.mirror_behind",
                shop=shop,
                mirror=str(mirror.path),
                reason=(
                    "not yet filled whole (a backfill or refill was cut short)"
                    if owner is None
                    else "another mirror (deleted or replaced)"
                    if owner != mirror_id
                    else "an older copy (it lacks later batches)"
                ),
                action="every order is mapped and written",
            )
            with store.engine.begin() as connection:
                versions.set_projection(connection, shop, seq, None)
        return cls(store, mirror, platform, shop, {}, not holds, False, seq)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def numbered(self, seq: int) -> tuple[str, str, int]:
        return (self.platform, self.shop, seq)

    def record(self, connection: Connection, seq: int, rows: list[dict[str, Any]]) -> None:
        """A batch's versions and number, in the caller's transaction (after the mirror committed)."""
        versions.record(connection, rows, seq)
        owner = self._mirror_id() if self.trusted else None
        versions.set_projection(connection, self.shop, seq, owner)

    def complete(self) -> None:
        """The run read the whole shop into this mirror: it follows the versions from now on."""
        mirror_id = self._mirror_id()
        with self.store.engine.begin() as connection:
            versions.set_projection(connection, self.shop, self.seq, mirror_id)
        self.trusted = True

    _id: str | None = field(default=None, init=False, repr=False)

    def _mirror_id(self) -> str | None:
        if self._id is None:
            self._id = self.mirror.projection(self.platform, self.shop)[0]
        return self._id
