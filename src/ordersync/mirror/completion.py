"""``orders.completed_at`` on WebCommander, whose API gives none: observed by the mirror.

One meaning on every platform is "when the order last became completed", kept afterwards, as
WooCommerce keeps ``date_completed`` when an order moves on (refunded, reopened). WebCommander states
no such time, so the mirror fills it from the versions it sees, before the batch is written:

- the first version seen completed (an order new to the mirror, or one whose stored version had
  another status): that version's ``updated_at``, the shop's last change, which is no earlier than
  the completion and, for a change just observed, usually is it (``now`` if the shop gives none);
- any later version: the time already stored, whatever its status, so a comment, a refund or a
  reopening does not move or clear it; completed again after another status, it gets the new time.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

OBSERVED = "webcommander"
"""The platform whose completion time is observed rather than given."""

STORED = """
    SELECT c.platform, c.shop, c.order_id, o.status, o.completed_at
    FROM _changed c
    JOIN orders o ON o.rowid = c.stored_row
    WHERE c.rewrite AND c.platform = 'webcommander'
"""
"""What the mirror holds of the batch's rewritten WebCommander orders, before their rows are replaced
(``_changed`` is the write's own temporary table)."""


def fill_completed_at(
    orders: pa.Table, now: datetime, con: duckdb.DuckDBPyConnection | None = None
) -> pa.Table:
    """The batch's orders with ``completed_at`` filled where the platform gives none; ``con`` reads
    what the mirror holds of them (None: a batch of orders new to the mirror)."""
    observed = pc.equal(orders["platform"], OBSERVED)
    if not pc.any(observed).as_py():
        return orders
    column = orders.schema.field("completed_at").type
    completed = pc.fill_null(pc.equal(orders["status"], "completed"), False)
    first_seen = pc.coalesce(orders["updated_at"], pa.scalar(now, column))
    unfilled = pc.and_(observed, pc.is_null(orders["completed_at"]))
    filled = pc.if_else(pc.and_(unfilled, completed), first_seen, orders["completed_at"])
    if con is not None:
        stored = {
            (platform, shop, order_id): (status, completed_at)
            for platform, shop, order_id, status, completed_at in con.execute(STORED).fetchall()
        }
        if stored:
            values = filled.to_pylist()
            rows = zip(
                orders["platform"].to_pylist(),
                orders["shop"].to_pylist(),
                orders["order_id"].to_pylist(),
                orders["status"].to_pylist(),
                unfilled.to_pylist(),
                strict=True,
            )
            for index, (platform, shop, order_id, status, open_) in enumerate(rows):
                before = stored.get((platform, shop, order_id))
                if not open_ or before is None or before[1] is None:
                    continue  # the shop's own time, an order new to the mirror, or none stored yet
                was_completed = before[0] == "completed"
                if status != "completed" or was_completed:
                    values[index] = before[1]  # kept: moved on, or still completed
            filled = pa.array(values, column)
    position = orders.schema.get_field_index("completed_at")
    return orders.set_column(position, "completed_at", filled)
