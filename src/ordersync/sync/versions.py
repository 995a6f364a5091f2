"""Each mapped order's version for the state store, built from the batch the mirror was given.

The state store, not the mirror, is what ordersync decides from: which orders are unchanged (their
content hash), which changed since routing last looked (the feed, by batch number) and which open
orders' notes to re-read. A version carries what those need and no more: the statuses and times as
columns, and as JSON the number, currency, and the ids of comments (with text and author, which
routing forwards and filters on), refunds and paid payments. Pure: tables in, rows out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa

Key = tuple[str, str, str]

_CHILDREN: dict[str, tuple[str, ...]] = {
    "comments": ("comment_id", "text", "customer_visible", "author"),
    "refunds": ("refund_id", "amount", "reason"),
    "payments": ("payment_id", "amount", "gateway", "status"),
}


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _children(table: pa.Table | None, columns: tuple[str, ...]) -> dict[Key, list[list[Any]]]:
    found: dict[Key, list[list[Any]]] = defaultdict(list)
    if table is None or not table.num_rows:
        return found
    names = ("platform", "shop", "order_id", *columns)
    data = [table.column(name).to_pylist() for name in names]
    for platform, shop, order_id, *values in zip(*data, strict=True):
        found[(platform, shop, order_id)].append(values)
    return found


def version_rows(tables: Mapping[str, pa.Table]) -> list[dict[str, Any]]:
    """One row per order of ``tables`` (a batch's, before any privacy scrub): the columns of
    ``state.tables.order_versions`` but ``seq``, which the writer gives the whole batch."""
    orders = tables.get("orders")
    if orders is None or not orders.num_rows:
        return []
    children = {kind: _children(tables.get(kind), columns) for kind, columns in _CHILDREN.items()}
    names = (
        "platform",
        "shop",
        "order_id",
        "content_hash",
        "status",
        "created_at",
        "updated_at",
        "number",
        "payment_status",
        "currency",
    )
    columns = [orders.column(name).to_pylist() for name in names]
    rows = []
    for platform, shop, order_id, digest, status, created, updated, number, paid, currency in zip(
        *columns, strict=True
    ):
        key = (platform, shop, order_id)
        facts = {
            "number": number,
            "payment_status": paid,
            "currency": currency,
            "comments": children["comments"].get(key, []),
            "refunds": [[i, _money(a), r] for i, a, r in children["refunds"].get(key, [])],
            "payments": [
                [i, _money(a), g] for i, a, g, state in children["payments"].get(key, []) if state == "paid"
            ],
        }
        rows.append(
            {
                "platform": platform,
                "shop": shop,
                "order_id": order_id,
                "content_hash": digest,
                "status": status,
                "created_at": created,
                "updated_at": updated,
                "facts": orjson.dumps(facts).decode(),
            }
        )
    return rows
