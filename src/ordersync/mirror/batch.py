"""Mapped orders and quarantined records as Arrow tables, gathered into one write.

Rows are built with ``attrgetter`` (one C call per line) and transposed with ``zip`` so the Python
work per order stays small; pages are mapped into tables in worker processes and only the tables
travel back. A batch never holds the same order twice: the pipeline flushes before adding a page
that repeats an order already in the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

import orjson
import pyarrow as pa

from ordersync.mirror.schema import ADDRESS_FIELDS, QUARANTINE, TABLES, arrow_schema
from ordersync.models import Order

OrderKey = tuple[str, str, str]

# table -> (Order attribute holding the lines, [(column, attribute)]) for the plain child tables.
_CHILDREN: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "tax_lines": (
        "tax_lines",
        [
            ("tax_line_id", "external_id"),
            ("rate_id", "rate_id"),
            ("code", "code"),
            ("label", "label"),
            ("rate_percent", "rate_percent"),
            ("compound", "compound"),
            ("tax_total", "tax_total"),
            ("shipping_tax_total", "shipping_tax_total"),
            ("combined_total", "combined_total"),
        ],
    ),
    "shipping_lines": (
        "shipping_lines",
        [
            ("shipping_line_id", "external_id"),
            ("method_id", "method_id"),
            ("method_title", "method_title"),
            ("total", "total"),
            ("tax", "tax"),
            ("discount", "discount"),
        ],
    ),
    "fee_lines": (
        "fee_lines",
        [("fee_line_id", "external_id"), ("name", "name"), ("total", "total"), ("tax", "tax")],
    ),
    "coupon_lines": (
        "coupon_lines",
        [
            ("coupon_line_id", "external_id"),
            ("code", "code"),
            ("discount", "discount"),
            ("discount_tax", "discount_tax"),
        ],
    ),
    "payments": (
        "payments",
        [
            ("payment_id", "external_id"),
            ("gateway", "gateway"),
            ("gateway_name", "gateway_name"),
            ("amount", "amount"),
            ("surcharge", "surcharge"),
            ("status", "status"),
            ("status_raw", "status_raw"),
            ("paid_at", "paid_at"),
            ("transaction_id", "transaction_id"),
            ("payer_info", "payer_info"),
        ],
    ),
    "refunds": (
        "refunds",
        [
            ("refund_id", "external_id"),
            ("amount", "amount"),
            ("reason", "reason"),
            ("created_at", "created_at"),
            ("payment_id", "payment_id"),
            ("gateway", "gateway"),
            ("refunded_by", "refunded_by"),
        ],
    ),
    "comments": (
        "comments",
        [
            ("comment_id", "external_id"),
            ("text", "text"),
            ("author", "author"),
            ("customer_visible", "customer_visible"),
            ("by_admin", "by_admin"),
            ("created_at", "created_at"),
        ],
    ),
    "shipments": (
        "shipments",
        [
            ("shipment_id", "external_id"),
            ("method", "method"),
            ("tracking", "tracking"),
            ("shipped_at", "shipped_at"),
            ("item_ids", "item_ids"),
        ],
    ),
}
_LINE_FIELDS = [
    ("line_id", "external_id"),
    ("product_id", "product_id"),
    ("variation_id", "variation_id"),
    ("sku", "sku"),
    ("name", "name"),
    ("quantity", "quantity"),
    ("unit_price", "unit_price"),
    ("subtotal", "subtotal"),
    ("total", "total"),
    ("tax", "tax"),
    ("subtotal_tax", "subtotal_tax"),
    ("discount", "discount"),
    ("tax_class", "tax_class"),
    ("taxable", "taxable"),
    ("shippable", "shippable"),
]
_ORDER_FIELDS = [
    name
    for name, _ in TABLES["orders"]
    if name not in ("platform", "shop", "order_id", "item_count", "content_hash", "loaded_at")
]

_get_order = attrgetter(*_ORDER_FIELDS)
_get_address = attrgetter(*ADDRESS_FIELDS)
_get_line = attrgetter(*(attr for _, attr in _LINE_FIELDS))
_get_child = {table: attrgetter(*(attr for _, attr in fields)) for table, (_, fields) in _CHILDREN.items()}
_REFUND_LINE = attrgetter("line_item_id", "product_id", "quantity", "amount", "tax", "kind")

_SCHEMAS = {table: arrow_schema(columns) for table, columns in TABLES.items()}
_QUARANTINE_SCHEMA = arrow_schema(QUARANTINE)


@dataclass
class LoadedOrder:
    order: Order
    payload: bytes
    """The order as the shop listed it."""
    content_hash: str
    source_url: str
    details: bytes | None = None
    """What was fetched beside it (WooCommerce ``_refunds``, ``_notes``), JSON; None if nothing."""


@dataclass
class QuarantinedRecord:
    platform: str
    shop: str
    record_id: str | None
    path: str
    reason: str
    payload: bytes
    content_hash: str
    source_url: str


def _json_list(items: list[Any]) -> str | None:
    return orjson.dumps([i.model_dump(mode="json") for i in items]).decode() if items else None


def _table(schema: pa.Schema, rows: list[tuple[Any, ...]]) -> pa.Table:
    """Rows to columns in C (``zip``), then one Arrow array per column."""
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)], schema=schema
    )


def order_tables(loaded: Iterable[LoadedOrder], now: datetime) -> dict[str, pa.Table]:
    """Every mirror table's rows for these orders (enums go in as their string values)."""
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLES}
    for item in loaded:
        order = item.order
        key = (order.platform.value, order.shop, order.external_id)
        rows["orders"].append((*key, *_get_order(order), len(order.line_items), item.content_hash, now))
        for kind in ("billing", "shipping"):
            address = getattr(order, kind)
            if address is not None:
                rows["order_addresses"].append((*key, kind, *_get_address(address)))
        for position, line in enumerate(order.line_items):
            rows["line_items"].append(
                (
                    *key,
                    position,
                    *_get_line(line),
                    _json_list(line.attributes),
                    _json_list(line.taxes),
                    line.sold_product_id,
                )
            )
        for table, (attr, _) in _CHILDREN.items():
            getter = _get_child[table]
            for position, line in enumerate(getattr(order, attr)):
                rows[table].append((*key, position, *getter(line)))
        for refund_pos, refund in enumerate(order.refunds):
            for position, rline in enumerate(refund.lines):
                rows["refund_lines"].append(
                    (*key, refund_pos, position, refund.external_id, *_REFUND_LINE(rline))
                )
        details = item.details.decode() if item.details else None
        rows["raw_orders"].append(
            (*key, item.payload.decode(), item.content_hash, item.source_url, now, details)
        )
    return {table: _table(_SCHEMAS[table], table_rows) for table, table_rows in rows.items()}


def quarantine_table(records: Iterable[QuarantinedRecord], now: datetime) -> pa.Table:
    rows = [
        (
            q.platform,
            q.shop,
            q.record_id,
            q.path,
            q.reason,
            q.payload.decode(),
            q.content_hash,
            q.source_url,
            now,
        )
        for q in records
    ]
    return _table(_QUARANTINE_SCHEMA, rows)


@dataclass
class Batch:
    """What one DuckDB transaction writes: tables from mapped pages, plus single orders added directly."""

    _tables: dict[str, list[pa.Table]] = field(default_factory=lambda: {t: [] for t in TABLES})
    _quarantine: list[pa.Table] = field(default_factory=list)
    _orders: dict[OrderKey, LoadedOrder] = field(default_factory=dict)
    _records: list[QuarantinedRecord] = field(default_factory=list)
    keys: set[OrderKey] = field(default_factory=set)
    quarantined: int = 0
    nbytes: int = 0
    """Arrow bytes of the tables added: what sizes a write."""
    fresh: bool = True
    """Every order added is new to the mirror (the caller knows), so none has rows to replace."""

    def __len__(self) -> int:
        return len(self.keys) + self.quarantined

    @property
    def order_count(self) -> int:
        return len(self.keys)

    def add(self, order: Order, payload: bytes, content_hash: str, source_url: str) -> None:
        key = (order.platform.value, order.shop, order.external_id)
        self.fresh = False
        self._orders[key] = LoadedOrder(order, payload, content_hash, source_url)
        self.keys.add(key)

    def quarantine(self, record: QuarantinedRecord) -> None:
        self._records.append(record)
        self.quarantined += 1

    def add_tables(
        self,
        tables: dict[str, pa.Table],
        quarantine: pa.Table,
        keys: Iterable[OrderKey],
        *,
        fresh: bool = False,
    ) -> None:
        """A mapped page; its keys must not be in the batch already (the caller flushes first).
        ``fresh``: the caller knows that none of its orders is in the mirror yet."""
        self.fresh = self.fresh and fresh
        for table, data in tables.items():
            if data.num_rows:
                self._tables[table].append(data)
                self.nbytes += data.nbytes
        if quarantine.num_rows:
            self._quarantine.append(quarantine)
            self.quarantined += quarantine.num_rows
        self.keys.update(keys)

    def tables(self, now: datetime) -> tuple[dict[str, pa.Table], pa.Table]:
        direct = order_tables(self._orders.values(), now) if self._orders else None
        merged = {}
        for table, parts in self._tables.items():
            pieces = [*parts, direct[table]] if direct is not None else parts
            merged[table] = pa.concat_tables(pieces) if pieces else _SCHEMAS[table].empty_table()
        quarantine_parts = [*self._quarantine, quarantine_table(self._records, now)]
        return merged, pa.concat_tables(quarantine_parts)
