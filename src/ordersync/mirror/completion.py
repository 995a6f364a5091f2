"""``orders.completed_at`` where the shop gives none (WebCommander): the time ordersync observed it.

One meaning on every platform is "when the order became completed". WooCommerce states it; the
WebCommander API does not, so the mirror fills it from what it sees, before the batch is written:

- an order that was in another status when last mirrored and is completed now: the time of the run
  that saw the change (``now``);
- an order already completed the first time it is mirrored (a backfill): the shop's ``updated_at``,
  its last change, which is no earlier than the completion;
- an order rewritten while it stays completed: the time it had, so a later comment does not move it.

An order that leaves the completed status loses it; completed again, it gets the new time.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

STORED = """
    SELECT c.platform, c.shop, c.order_id, o.status, o.completed_at, o.updated_at
    FROM _changed c
    JOIN b_orders b ON b.platform = c.platform AND b.shop = c.shop AND b.order_id = c.order_id
    JOIN orders o ON o.rowid = c.stored_row
    WHERE c.rewrite AND b.status = 'completed' AND b.completed_at IS NULL
"""
"""What the mirror holds of the batch's completed orders that lack a time, before their rows are
replaced (``_changed`` and ``b_orders`` are the write's own temporary relations)."""


def _unfilled(orders: pa.Table) -> pa.Array:
    return pc.and_(pc.equal(orders["status"], "completed"), pc.is_null(orders["completed_at"]))


def fill_completed_at(
    orders: pa.Table, now: datetime, con: duckdb.DuckDBPyConnection | None = None
) -> pa.Table:
    """The batch's orders with ``completed_at`` filled where the shop gave none; ``con`` reads what
    the mirror holds of them (None: a batch of orders new to the mirror)."""
    unfilled = _unfilled(orders)
    if not pc.any(unfilled).as_py():
        return orders
    column = orders.schema.field("completed_at").type
    first_seen = pc.coalesce(orders["updated_at"], pa.scalar(now, column))
    filled = pc.if_else(unfilled, first_seen, orders["completed_at"])
    if con is not None:
        known = {
            (platform, shop, order_id): (completed_at or updated_at if status == "completed" else now)
            for platform, shop, order_id, status, completed_at, updated_at in con.execute(STORED).fetchall()
        }
        if known:
            keys = zip(
                orders["platform"].to_pylist(),
                orders["shop"].to_pylist(),
                orders["order_id"].to_pylist(),
                strict=True,
            )
            values = filled.to_pylist()
            for index, key in enumerate(keys):
                if known.get(key) is not None:
                    values[index] = known[key]
            filled = pa.array(values, column)
    position = orders.schema.get_field_index("completed_at")
    return orders.set_column(position, "completed_at", filled)
