"""A batch of mapped orders and quarantined records, turned into Arrow tables in one go.

The batch keeps the last version of each order it is given, so a page that repeats an order (offset
pagination while orders arrive) never writes it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from ordersync.mirror.schema import ADDRESS_FIELDS, QUARANTINE, TABLES, arrow_schema
from ordersync.models import Order

OrderKey = tuple[str, str, str]

# table -> (Order attribute holding the list, the line's id attribute, [(column, attribute)])
_CHILDREN: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "line_items": (
        "line_items",
        [
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
        ],
    ),
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

_ORDER_COLUMNS = [
    name
    for name, _ in TABLES["orders"]
    if name not in ("platform", "shop", "order_id", "item_count", "content_hash", "loaded_at")
]


def _plain(value: Any) -> Any:
    """Enums become their value; everything else Arrow can take as it is."""
    return getattr(value, "value", value)


@dataclass
class _Loaded:
    order: Order
    payload: bytes
    content_hash: str
    source_url: str


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


class Batch:
    def __init__(self) -> None:
        self._orders: dict[OrderKey, _Loaded] = {}
        self.quarantined: list[QuarantinedRecord] = []

    def __len__(self) -> int:
        return len(self._orders) + len(self.quarantined)

    @property
    def order_count(self) -> int:
        return len(self._orders)

    def add(self, order: Order, payload: bytes, content_hash: str, source_url: str) -> None:
        key = (order.platform.value, order.shop, order.external_id)
        self._orders[key] = _Loaded(order, payload, content_hash, source_url)

    def quarantine(self, record: QuarantinedRecord) -> None:
        self.quarantined.append(record)

    def keys(self) -> list[OrderKey]:
        return list(self._orders)

    def arrow_tables(self, now: datetime) -> dict[str, pa.Table]:
        """Column-wise build of every table; one pass over the orders per table family."""
        cols: dict[str, dict[str, list[Any]]] = {t: {c: [] for c, _ in TABLES[t]} for t in TABLES}
        for (platform, shop, order_id), item in self._orders.items():
            order = item.order
            o = cols["orders"]
            o["platform"].append(platform)
            o["shop"].append(shop)
            o["order_id"].append(order_id)
            for name in _ORDER_COLUMNS:
                o[name].append(_plain(getattr(order, name)))
            o["item_count"].append(len(order.line_items))
            o["content_hash"].append(item.content_hash)
            o["loaded_at"].append(now)

            for kind in ("billing", "shipping"):
                address = getattr(order, kind)
                if address is None:
                    continue
                a = cols["order_addresses"]
                a["platform"].append(platform)
                a["shop"].append(shop)
                a["order_id"].append(order_id)
                a["kind"].append(kind)
                for name in ADDRESS_FIELDS:
                    a[name].append(getattr(address, name))

            for table, (attr, fields) in _CHILDREN.items():
                c = cols[table]
                for position, line in enumerate(getattr(order, attr)):
                    c["platform"].append(platform)
                    c["shop"].append(shop)
                    c["order_id"].append(order_id)
                    c["position"].append(position)
                    for column, field in fields:
                        c[column].append(_plain(getattr(line, field)))
                    if table == "line_items":
                        c["attributes"].append(
                            orjson.dumps([a.model_dump() for a in line.attributes]).decode()
                            if line.attributes
                            else None
                        )
                        c["taxes"].append(
                            orjson.dumps([t.model_dump(mode="json") for t in line.taxes]).decode()
                            if line.taxes
                            else None
                        )
                    elif table == "refunds":
                        r = cols["refund_lines"]
                        for line_pos, rline in enumerate(line.lines):
                            r["platform"].append(platform)
                            r["shop"].append(shop)
                            r["order_id"].append(order_id)
                            r["refund_position"].append(position)
                            r["position"].append(line_pos)
                            r["refund_id"].append(line.external_id)
                            r["line_item_id"].append(rline.line_item_id)
                            r["product_id"].append(rline.product_id)
                            r["quantity"].append(rline.quantity)
                            r["amount"].append(rline.amount)
                            r["tax"].append(rline.tax)

            raw = cols["raw_orders"]
            raw["platform"].append(platform)
            raw["shop"].append(shop)
            raw["order_id"].append(order_id)
            raw["payload"].append(item.payload.decode())
            raw["content_hash"].append(item.content_hash)
            raw["source_url"].append(item.source_url)
            raw["received_at"].append(now)
        return {
            table: pa.table(columns, schema=arrow_schema(TABLES[table])) for table, columns in cols.items()
        }

    def quarantine_table(self, now: datetime) -> pa.Table:
        names = [c for c, _ in QUARANTINE]
        rows = {n: [] for n in names}
        for q in self.quarantined:
            values = {
                "platform": q.platform,
                "shop": q.shop,
                "record_id": q.record_id,
                "path": q.path,
                "reason": q.reason,
                "payload": q.payload.decode(),
                "content_hash": q.content_hash,
                "source_url": q.source_url,
                "quarantined_at": now,
            }
            for n in names:
                rows[n].append(values[n])
        return pa.table(rows, schema=arrow_schema(QUARANTINE))
