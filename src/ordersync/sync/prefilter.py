"""Skipping orders whose raw payload is already in the mirror, before they are mapped.

The mirror keeps each order's content hash (raw payload plus mapping version). A scan of an unchanged
shop hashes what it receives and compares: only new or changed orders go to the mapping workers and
into DuckDB. Hashing is the same as the worker's (``pagework.order_digest`` over the order's JSON and
the details fetched beside it), so an order skipped here is one the mirror would have left alone.
"""

from __future__ import annotations

from typing import Any

import orjson

from ordersync.sync.pagework import details_of, order_digest


class Prefilter:
    def __init__(self, known: dict[str, str], mapping_version: str, orders_key: str | None):
        self.known = known
        self.version = mapping_version
        self.orders_key = orders_key
        self.seen: set[str] = set()
        """Every order id received, for marking the orders that left the listing."""

    def changed(
        self, body: bytes, count: int, attachments: bytes | None
    ) -> tuple[list[Any], dict[str, Any] | None, int]:
        """The page's new or changed raw orders, the details of those, and how many were unchanged."""
        data = orjson.loads(body)
        raws = data[self.orders_key] if self.orders_key else data
        raws = raws[:count]
        details = orjson.loads(attachments) if attachments else None
        changed: list[Any] = []
        passed: dict[str, Any] = {}
        unchanged = 0
        for raw in raws:
            record_id = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") is not None else None
            if record_id is not None:
                self.seen.add(record_id)
                extra = details_of(raw, details)
                digest = order_digest(orjson.dumps(raw), orjson.dumps(extra) if extra else None, self.version)
                if self.known.get(record_id) == digest:
                    unchanged += 1
                    continue
                # Passed on now, so a second pass over the listing (or a page read twice) skips it.
                self.known[record_id] = digest
                if extra:
                    passed[record_id] = extra
            changed.append(raw)
        return changed, passed or None, unchanged
