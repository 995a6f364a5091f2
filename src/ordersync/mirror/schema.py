"""Table definitions of the mirror, written once and used for DDL and Arrow schemas alike.

Raw payloads are VARCHAR holding JSON text: DuckDB's JSON functions and ``->>`` work on it as they
do on the JSON type, and it skips a validating cast that cost more than all other inserts together.

Every order-level table carries (platform, shop, order_id): the upsert key. Child tables add
``position`` (the line's place in the order) so that a re-load reproduces rows in the same order.

Tables and columns added after the first release are created with IF NOT EXISTS, so a mirror file
written by an older version gains them the next time it is opened, keeping its rows.
"""

from __future__ import annotations

import pyarrow as pa

MONEY = "DECIMAL(18,4)"

KEY = [("platform", "VARCHAR"), ("shop", "VARCHAR"), ("order_id", "VARCHAR")]

ADDRESS_FIELDS = [
    "external_id",
    "first_name",
    "last_name",
    "company",
    "line1",
    "line2",
    "city",
    "postcode",
    "state_code",
    "state_name",
    "state_id",
    "country_code",
    "country_name",
    "country_id",
    "email",
    "phone",
    "mobile",
    "fax",
]

TABLES: dict[str, list[tuple[str, str]]] = {
    "orders": [
        *KEY,
        ("number", "VARCHAR"),
        ("status", "VARCHAR"),
        ("status_raw", "VARCHAR"),
        ("payment_status", "VARCHAR"),
        ("payment_status_raw", "VARCHAR"),
        ("fulfilment_status", "VARCHAR"),
        ("fulfilment_status_raw", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("prices_include_tax", "BOOLEAN"),
        ("created_at", "TIMESTAMPTZ"),
        ("updated_at", "TIMESTAMPTZ"),
        ("paid_at", "TIMESTAMPTZ"),
        ("completed_at", "TIMESTAMPTZ"),
        ("customer_id", "VARCHAR"),
        ("customer_name", "VARCHAR"),
        ("customer_email", "VARCHAR"),
        ("customer_note", "VARCHAR"),
        ("channel", "VARCHAR"),
        ("delivery_type", "VARCHAR"),
        ("ip_address", "VARCHAR"),
        ("subtotal", MONEY),
        ("discount_total", MONEY),
        ("discount_tax", MONEY),
        ("shipping_total", MONEY),
        ("shipping_tax", MONEY),
        ("fee_total", MONEY),
        ("tax_total", MONEY),
        ("total", MONEY),
        ("paid_total", MONEY),
        ("refunded_total", MONEY),
        ("item_count", "INTEGER"),
        ("content_hash", "VARCHAR"),
        ("loaded_at", "TIMESTAMPTZ"),
    ],
    "order_addresses": [*KEY, ("kind", "VARCHAR"), *[(f, "VARCHAR") for f in ADDRESS_FIELDS]],
    "line_items": [
        *KEY,
        ("position", "INTEGER"),
        ("line_id", "VARCHAR"),
        ("product_id", "VARCHAR"),
        ("variation_id", "VARCHAR"),
        ("sku", "VARCHAR"),
        ("name", "VARCHAR"),
        ("quantity", "DECIMAL(18,4)"),
        ("unit_price", MONEY),
        ("subtotal", MONEY),
        ("total", MONEY),
        ("tax", MONEY),
        ("subtotal_tax", MONEY),
        ("discount", MONEY),
        ("tax_class", "VARCHAR"),
        ("taxable", "BOOLEAN"),
        ("shippable", "BOOLEAN"),
        ("attributes", "JSON"),
        ("taxes", "JSON"),
    ],
    "tax_lines": [
        *KEY,
        ("position", "INTEGER"),
        ("tax_line_id", "VARCHAR"),
        ("rate_id", "VARCHAR"),
        ("code", "VARCHAR"),
        ("label", "VARCHAR"),
        ("rate_percent", "DECIMAL(9,4)"),
        ("compound", "BOOLEAN"),
        ("tax_total", MONEY),
        ("shipping_tax_total", MONEY),
    ],
    "shipping_lines": [
        *KEY,
        ("position", "INTEGER"),
        ("shipping_line_id", "VARCHAR"),
        ("method_id", "VARCHAR"),
        ("method_title", "VARCHAR"),
        ("total", MONEY),
        ("tax", MONEY),
        ("discount", MONEY),
    ],
    "fee_lines": [
        *KEY,
        ("position", "INTEGER"),
        ("fee_line_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("total", MONEY),
        ("tax", MONEY),
    ],
    "coupon_lines": [
        *KEY,
        ("position", "INTEGER"),
        ("coupon_line_id", "VARCHAR"),
        ("code", "VARCHAR"),
        ("discount", MONEY),
        ("discount_tax", MONEY),
    ],
    "payments": [
        *KEY,
        ("position", "INTEGER"),
        ("payment_id", "VARCHAR"),
        ("gateway", "VARCHAR"),
        ("gateway_name", "VARCHAR"),
        ("amount", MONEY),
        ("surcharge", MONEY),
        ("status", "VARCHAR"),
        ("status_raw", "VARCHAR"),
        ("paid_at", "TIMESTAMPTZ"),
        ("transaction_id", "VARCHAR"),
        ("payer_info", "VARCHAR"),
    ],
    "refunds": [
        *KEY,
        ("position", "INTEGER"),
        ("refund_id", "VARCHAR"),
        ("amount", MONEY),
        ("reason", "VARCHAR"),
        ("created_at", "TIMESTAMPTZ"),
        ("payment_id", "VARCHAR"),
        ("gateway", "VARCHAR"),
        ("refunded_by", "VARCHAR"),
    ],
    "refund_lines": [
        *KEY,
        ("refund_position", "INTEGER"),
        ("position", "INTEGER"),
        ("refund_id", "VARCHAR"),
        ("line_item_id", "VARCHAR"),
        ("product_id", "VARCHAR"),
        ("quantity", "DECIMAL(18,4)"),
        ("amount", MONEY),
        ("tax", MONEY),
    ],
    "comments": [
        *KEY,
        ("position", "INTEGER"),
        ("comment_id", "VARCHAR"),
        ("text", "VARCHAR"),
        ("author", "VARCHAR"),
        ("customer_visible", "BOOLEAN"),
        ("by_admin", "BOOLEAN"),
        ("created_at", "TIMESTAMPTZ"),
    ],
    "shipments": [
        *KEY,
        ("position", "INTEGER"),
        ("shipment_id", "VARCHAR"),
        ("method", "VARCHAR"),
        ("tracking", "VARCHAR"),
        ("shipped_at", "TIMESTAMPTZ"),
        ("item_ids", "VARCHAR[]"),
    ],
    "raw_orders": [
        *KEY,
        ("payload", "VARCHAR"),
        ("content_hash", "VARCHAR"),
        ("source_url", "VARCHAR"),
        ("received_at", "TIMESTAMPTZ"),
    ],
}

ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "line_items": [("sold_product_id", "VARCHAR")],
    "tax_lines": [("combined_total", MONEY)],
    "refund_lines": [("kind", "VARCHAR")],
    "raw_orders": [("details", "VARCHAR")],
}
"""Columns added after a table was first released: last in the table, so that a new file and one
that gained them by ALTER TABLE have the same column order."""


def with_added_columns(
    tables: dict[str, list[tuple[str, str]]], added: dict[str, list[tuple[str, str]]]
) -> list[str]:
    """Append ``added`` to their tables' definitions; return the statements that give an older file
    the same columns in the same order."""
    for table, columns in added.items():
        tables[table].extend(columns)
    return [f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c} {k}" for t, cs in added.items() for c, k in cs]


_ADD_COLUMNS = with_added_columns(TABLES, ADDED_COLUMNS)

ORDER_TABLES = list(TABLES)
"""Tables whose rows belong to one order and are replaced together when the order changes."""

QUARANTINE = [
    ("platform", "VARCHAR"),
    ("shop", "VARCHAR"),
    ("record_id", "VARCHAR"),
    ("path", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("payload", "VARCHAR"),
    ("content_hash", "VARCHAR"),
    ("source_url", "VARCHAR"),
    ("quarantined_at", "TIMESTAMPTZ"),
]


SHOPS = [
    ("shop", "VARCHAR PRIMARY KEY"),
    ("platform", "VARCHAR"),
    ("api", "VARCHAR"),
    ("timezone", "VARCHAR"),
    ("currency", "VARCHAR"),
    ("base_url", "VARCHAR"),
    ("updated_at", "TIMESTAMPTZ"),
]
"""One row per configured shop, written at the start of each of its runs: what an analyst needs to read
its orders (the time zone its days are counted in, its currency, which API fed it). The base URL
carries no credentials."""

PRODUCT_MAP = [
    ("shop", "VARCHAR"),
    ("product_id", "VARCHAR"),
    ("sku", "VARCHAR"),
    ("peer_shop", "VARCHAR"),
    ("peer_product_id", "VARCHAR"),
    ("route", "VARCHAR"),
]
"""The routes' product maps, one row per entry, so that a product without a SKU of its own (every
WebCommander line) is known by the SKU another shop gives it. Rewritten for a shop at each of its runs."""

MIRROR_META = [("key", "VARCHAR PRIMARY KEY"), ("value", "VARCHAR"), ("updated_at", "TIMESTAMPTZ")]
"""What the file itself has been through: one-time migrations done, a key that could not be declared."""

MIRROR_BATCHES = [
    ("platform", "VARCHAR"),
    ("shop", "VARCHAR"),
    ("seq", "BIGINT"),
    ("run_id", "BIGINT"),
    ("orders", "INTEGER"),
    ("written_at", "TIMESTAMPTZ"),
]
"""One row per batch written, numbered by the state store: how far this mirror follows the state's
order versions (appended only, so writers of different shops never touch the same row)."""

RUNS = [
    ("run_id", "BIGINT PRIMARY KEY"),
    ("shop", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("status", "VARCHAR"),
    ("started_at", "TIMESTAMPTZ"),
    ("finished_at", "TIMESTAMPTZ"),
    ("fetched", "BIGINT"),
    ("loaded", "BIGINT"),
    ("unchanged", "BIGINT"),
    ("quarantined", "BIGINT"),
    ("error", "VARCHAR"),
]
"""Lineage: one row per run that wrote to this file, as the state store recorded it; orders.run_id
names the run that last wrote each order."""

ORDERS_MAINTAINED = [("missing_since", "TIMESTAMPTZ"), ("run_id", "BIGINT")]
"""Columns of ``orders`` the mirror keeps itself, not the batches: INSERT BY NAME leaves them NULL, so
a rewritten order counts as present. ``missing_since`` is when the shop's listing stopped showing it."""

ORDER_EVENTS = [
    *KEY,
    ("observed_at", "TIMESTAMPTZ"),
    ("kind", "VARCHAR"),
    ("status_before", "VARCHAR"),
    ("status", "VARCHAR"),
    ("payment_status_before", "VARCHAR"),
    ("payment_status", "VARCHAR"),
    ("total_before", MONEY),
    ("total", MONEY),
    ("refunded_total_before", MONEY),
    ("refunded_total", MONEY),
    ("updated_at", "TIMESTAMPTZ"),
]
"""Observed changes of an order, append-only: orders are rewritten whole, so their history lives here.
``kind`` is 'new', 'changed', 'disappeared' or 'reappeared'; ``updated_at`` is the shop's own."""

EVENT_FIELDS = ["status", "payment_status", "total", "refunded_total"]
"""The order columns whose change is an event; other changes (a comment, an address) are not."""


def arrow_type(sql_type: str) -> pa.DataType:
    if sql_type.startswith("DECIMAL("):
        precision, scale = sql_type[8:-1].split(",")
        return pa.decimal128(int(precision), int(scale))
    return {
        "VARCHAR": pa.string(),
        "JSON": pa.string(),
        "BOOLEAN": pa.bool_(),
        "INTEGER": pa.int32(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
        "VARCHAR[]": pa.list_(pa.string()),
    }[sql_type]


def arrow_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema([(name, arrow_type(sql)) for name, sql in columns])


KEYED = {"orders": ("platform", "shop", "order_id"), "raw_orders": ("platform", "shop", "order_id")}
"""Primary keys the file declares: one row per order. The child tables' keys (order plus position)
are documented but not declared: an index per line table would cost every write for a promise the
upsert already keeps (an order's rows are replaced together)."""


def create_statements(*, keys: bool = True) -> list[str]:
    """The tables, with their declared keys unless ``keys`` is False (a DuckLake declares none: it
    refuses PRIMARY KEY, and the upsert keeps one row per order by itself)."""

    def columns(cols: list[tuple[str, str]]) -> str:
        return ", ".join(f"{c} {t if keys else t.removesuffix(' PRIMARY KEY')}" for c, t in cols)

    statements = [
        f"CREATE TABLE IF NOT EXISTS {table} ({columns(cols)}"
        + (f", PRIMARY KEY ({', '.join(KEYED[table])})" if keys and table in KEYED else "")
        + ")"
        for table, cols in TABLES.items()
    ]
    statements.extend(
        f"CREATE TABLE IF NOT EXISTS {table} ({columns(cols)})"
        for table, cols in (
            ("quarantine", QUARANTINE),
            ("order_events", ORDER_EVENTS),
            ("shops", SHOPS),
            ("runs", RUNS),
            ("product_map", PRODUCT_MAP),
            ("mirror_meta", MIRROR_META),
            ("mirror_batches", MIRROR_BATCHES),
        )
    )
    statements.extend(f"ALTER TABLE orders ADD COLUMN IF NOT EXISTS {c} {t}" for c, t in ORDERS_MAINTAINED)
    statements.extend(_ADD_COLUMNS)
    return statements


def sql_text(text: str) -> str:
    """A SQL string literal (COMMENT ON takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"
