"""The known content hashes, handed to the workers so they skip unchanged orders before parsing.

The state store keeps each order's content hash (``state.versions``; the mirror's own, for a run
without a store) (the order's bytes as the shop sent them, the details
fetched beside it, the mapping version). The main process knows a page's ids from paging, so it sends
each order's stored hash by position; the worker hashes what it received, and only new or changed
orders are parsed, mapped and written. The new hashes of changed orders replace the stored ones, so
a page read twice in one run (a listing that moved) costs a hash the second time; new orders are
only marked as seen.

When the known orders are every order the mirror holds for the shop (``fresh_ok``), the run can also
tell the writer that a page holds only orders new to the mirror: those are inserted without a search
for rows to replace. One run per shop writes at a time, so nothing else adds them in between.
"""

from __future__ import annotations

from ordersync.idset import IdSet
from ordersync.sync.pagework import PageResult


class Prefilter:
    def __init__(self, known: dict[str, str], *, fresh_ok: bool = True):
        self.known = known
        """order id -> content hash, from the state store, then updated by what the run passes on."""
        self.fresh_ok = fresh_ok
        """Whether an order not in ``known`` is known not to be in the mirror."""
        self.new = IdSet()
        """Orders this run wrote that the mirror did not hold: only their ids (a bit each for
        numeric ids). A page read again maps them again and finds them unchanged in the mirror."""

    def hashes(self, ids: tuple[str | None, ...]) -> tuple[str | None, ...]:
        """The stored hash of each order of a page, by position (None where the mirror has none)."""
        known = self.known
        return tuple(known.get(i) if i is not None else None for i in ids)

    def absorb(self, result: PageResult) -> bool:
        """Remember what a page passed on; True when every order it loads is new to the mirror."""
        known, new = self.known, self.new
        fresh = self.fresh_ok and all(key[2] not in known and key[2] not in new for key in result.keys)
        for record_id, digest in result.digests.items():
            # A changed order keeps its new hash, so a page read again skips it.
            if record_id in known:
                known[record_id] = digest
            else:
                new.add(record_id)
        for key in result.keys:
            # Keyed by the mapped id too (the mirror's), should it differ from the listed one ("48.0"):
            # a later page repeating the order is then never taken for new.
            if key[2] not in known:
                new.add(key[2])
        return fresh
