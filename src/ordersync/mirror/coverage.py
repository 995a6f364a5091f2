"""Who fills what: for each mirror column, whether each platform's mapping gives it, read from the
mapping files themselves so the table in the data dictionary cannot drift from them.

A column counts as filled by a mapping when the mapping reads it from the payload (a constant null
does not count). Columns ordersync fills itself (keys, positions, hashes, lineage) say so, and
``orders.completed_at`` on WebCommander is the observed time the mirror keeps (mirror/completion.py).
How often each column is filled in a given file is the ``v_column_fill`` view.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ordersync.mapping import load_mapping
from ordersync.mirror.schema import TABLES

MAPPINGS = {
    "webcommander": "WebCommander",
    "woocommerce_v3": "WooCommerce v3",
    "woocommerce_v2": "WooCommerce v2",
}

_LISTS = {
    "billing": "order_addresses",
    "shipping": "order_addresses",
    "line_items": "line_items",
    "tax_lines": "tax_lines",
    "shipping_lines": "shipping_lines",
    "fee_lines": "fee_lines",
    "coupon_lines": "coupon_lines",
    "payments": "payments",
    "refunds": "refunds",
    "comments": "comments",
    "shipments": "shipments",
}
"""Order fields holding objects -> the table their rows go to."""

_FIELD_OF = {
    "line_items": {"line_id": "external_id", "attributes": "attributes", "taxes": "taxes"},
    "tax_lines": {"tax_line_id": "external_id"},
    "shipping_lines": {"shipping_line_id": "external_id"},
    "fee_lines": {"fee_line_id": "external_id"},
    "coupon_lines": {"coupon_line_id": "external_id"},
    "payments": {"payment_id": "external_id"},
    "refunds": {"refund_id": "external_id"},
    "comments": {"comment_id": "external_id"},
    "shipments": {"shipment_id": "external_id"},
}
"""Columns named differently from the model field they hold."""

_OURS = {
    "platform",
    "shop",
    "order_id",
    "position",
    "refund_position",
    "kind",
    "item_count",
    "content_hash",
    "loaded_at",
    "payload",
    "source_url",
    "received_at",
    "details",
}
"""Columns ordersync fills itself on every platform (refund_lines.refund_id too, from its refund)."""


def _referenced(spec: Any) -> list[str]:
    """The object names a field's spec builds (``each``, ``object``, ``build``, ``concat``)."""
    if not isinstance(spec, dict):
        return []
    names = [spec[k] for k in ("each", "object") if isinstance(spec.get(k), str)]
    names += [n for n in spec.get("build", []) if isinstance(n, str)]
    for part in spec.get("concat", []):
        names += _referenced(part)
    return names


def _reads(spec: Any) -> bool:
    return not (isinstance(spec, dict) and "const" in spec and spec["const"] is None)


def filled_fields(spec: dict[str, Any]) -> dict[str, set[str]]:
    """table -> the model fields this mapping fills for it."""
    objects: dict[str, dict[str, Any]] = spec.get("objects", {})
    out: dict[str, set[str]] = defaultdict(set)
    for key, field in spec["order"].items():
        table = _LISTS.get(key)
        if table is None:
            if _reads(field):
                out["orders"].add(key)
            continue
        for name in _referenced(field):
            for sub, sub_spec in objects.get(name, {}).items():
                if table == "refunds" and sub == "lines":
                    for line in _referenced(sub_spec):
                        out["refund_lines"] |= {f for f, s in objects.get(line, {}).items() if _reads(s)}
                elif _reads(sub_spec):
                    out[table].add(sub)
    return out


def _cell(table: str, column: str, mapping: str, filled: dict[str, set[str]]) -> str:
    if column in _OURS or (table == "refund_lines" and column == "refund_id"):
        return "ordersync"
    if table == "raw_orders":
        return "ordersync"
    field = _FIELD_OF.get(table, {}).get(column, column)
    if field in filled.get(table, set()):
        return "yes"
    if table == "orders" and column == "completed_at":
        return "observed"
    if table == "line_items" and column == "sold_product_id" and "product_id" in filled.get(table, set()):
        return "yes"
    return "—"


def coverage() -> dict[str, dict[str, dict[str, str]]]:
    """table -> column -> mapping -> yes, —, observed or ordersync."""
    fills = {name: filled_fields(load_mapping(name).spec) for name in MAPPINGS}
    return {
        table: {
            column: {name: _cell(table, column, name, fills[name]) for name in MAPPINGS}
            for column, _ in columns
        }
        for table, columns in TABLES.items()
    }


def markdown() -> list[str]:
    lines = [
        "## Who fills what",
        "",
        "Per column, whether each platform's mapping (`mappings/*.yaml`) reads it from the shop: `yes`; "
        "`—` the API does not give it (NULL, or the column's stated default); `ordersync` filled by the "
        "connector on every platform; `observed` the time the mirror saw it happen. Keys, positions, "
        "hashes and `raw_orders` are ordersync's own on every platform and are not listed. The fill rate "
        "in a given file is `SELECT * FROM v_column_fill`.",
        "",
        "| column | " + " | ".join(MAPPINGS.values()) + " |",
        "|---|" + "---|" * len(MAPPINGS),
    ]
    for table, columns in coverage().items():
        for column, cells in columns.items():
            if all(cell == "ordersync" for cell in cells.values()):
                continue  # keys, positions, hashes, the raw payload: the connector's own everywhere
            lines.append(f"| `{table}.{column}` | " + " | ".join(cells[m] for m in MAPPINGS) + " |")
    return lines


def fill_view() -> str:
    """``v_column_fill``: per platform, API, table and column, how many rows have it filled."""
    parts = []
    for table, columns in TABLES.items():
        if table == "raw_orders":
            continue
        names = [c for c, _ in columns if c not in ("platform", "shop", "order_id")]
        counts = ", ".join(f'count(x."{c}") AS "{c}"' for c in names)
        parts.append(
            f"SELECT '{table}' AS table_name, platform, api, column_name, row_count, filled, "
            "round(100.0 * filled / row_count, 1) AS fill_percent FROM (UNPIVOT ("
            f"SELECT x.platform, sh.api, count(*) AS row_count, {counts} FROM {table} x "
            "LEFT JOIN shops sh ON sh.shop = x.shop GROUP BY ALL"
            f") ON {', '.join(f'{chr(34)}{c}{chr(34)}' for c in names)} INTO NAME column_name VALUE filled)"
        )
    return "\nUNION ALL\n".join(parts)
