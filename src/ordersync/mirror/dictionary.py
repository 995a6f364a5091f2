"""The mirror's data dictionary: what every table and column means, written into the file with
``COMMENT ON`` (an analyst reads it with ``duckdb_tables()`` / ``duckdb_columns()``) and printed by
``ordersync schema --markdown``.

Money is DECIMAL(18,4) in the order's currency. Times are TIMESTAMPTZ instants, UTC in the file. A
column means the same whichever platform filled it, and NULL means the shop did not give it.
"""

from __future__ import annotations

from ordersync.mirror.schema import sql_text

_COMMON = {
    "platform": "webcommander or woocommerce",
    "shop": "the shop's name in the config (shops.shop)",
    "order_id": "the order's id in its shop",
    "position": "the line's place in the order, from 0",
}

_MONEY_LINE = {
    "total": "the line's amount after discounts, excluding tax",
    "tax": "tax on the line (after discounts)",
    "discount": "discount on the line, excluding tax",
}

TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "orders": (
        "One row per order, as the shop last showed it. Key: (platform, shop, order_id).",
        {
            "number": "the order number the shop shows to people (may differ from order_id)",
            "status": "canonical status: pending, processing, on_hold, completed, cancelled, refunded, "
            "failed, deleted, draft or other",
            "status_raw": "the status as the shop named it",
            "payment_status": "canonical payment status: unpaid, pending, partially_paid, paid, "
            "partially_refunded, refunded, failed, cancelled or other",
            "payment_status_raw": "the payment status as the shop named it",
            "fulfilment_status": "canonical fulfilment status where the shop gives one",
            "fulfilment_status_raw": "the fulfilment status as the shop named it",
            "currency": "ISO 4217 code of every amount of the order",
            "prices_include_tax": "whether the shop's prices include tax",
            "created_at": "when the order was placed",
            "updated_at": "when the shop last changed it",
            "paid_at": "when it was paid, where the shop says",
            "completed_at": "when the order last became completed, kept afterwards (a refunded or "
            "reopened order keeps it): the shop's own time where it gives one (WooCommerce); WebCommander "
            "gives none, so it is observed: the shop's updated_at of the first version the mirror saw "
            "completed (no earlier than the completion). NULL for an order never completed",
            "customer_id": "the customer's id in the shop; NULL for a guest",
            "customer_name": "the customer's name",
            "customer_email": "the customer's e-mail (a keyed hash with mirror.personal_data: hash)",
            "customer_note": "the customer's note on the order",
            "channel": "where the order came from (WebCommander orderChannel, WooCommerce created_via)",
            "delivery_type": "shipping, pickup or others, as the shop names them",
            "ip_address": "the customer's IP address (NULL with mirror.personal_data hash or drop)",
            "subtotal": "the lines before discounts, excluding tax (gross of discounts, ex tax)",
            "discount_total": "discounts, excluding tax",
            "discount_tax": "tax on the discounts",
            "shipping_total": "shipping, excluding tax",
            "shipping_tax": "tax on shipping",
            "fee_total": "fees, excluding tax",
            "tax_total": "all tax of the order (items, shipping and fees, after discounts)",
            "total": "what the customer was asked to pay, including tax, before refunds: subtotal - "
            "discount_total + shipping_total + fee_total + tax_total",
            "paid_total": "what the customer has paid and not had back, including tax: net of refunds, "
            "0 (never NULL) when nothing is paid. WebCommander states it (orderSummary.paid); on "
            "WooCommerce it is total - refunded_total once the order is paid (date_paid), else 0",
            "refunded_total": "the sum of the order's refunds, including tax, positive; 0 when none",
            "item_count": "number of line items",
            "content_hash": "hash of the order's bytes as listed, the details fetched beside it and the "
            "mapping's version: an unchanged hash means an unchanged order",
            "loaded_at": "when this row was written",
            "missing_since": "when the shop's listing stopped showing the order (NULL: it is listed)",
            "run_id": "the run (runs.run_id) that last wrote this order; NULL for orders written before "
            "lineage was kept",
        },
    ),
    "order_addresses": (
        "Billing and shipping addresses, one row each. Key: (platform, shop, order_id, kind).",
        {
            "kind": "billing or shipping",
            "external_id": "the address's id in the shop",
            "first_name": "first name",
            "last_name": "last name",
            "company": "company",
            "line1": "first address line",
            "line2": "second address line",
            "city": "city",
            "postcode": "postcode",
            "state_code": "state or province code (VIC), also for a WebCommander state id in the "
            "shop's state_ids",
            "state_name": "state or province name",
            "state_id": "the shop's id of the state (WebCommander)",
            "country_code": "ISO 3166-1 alpha-2 country code: the shop's own, or for a WebCommander "
            "address that gives only a country id, read through the shop's country_ids in the config "
            "(NULL where neither says)",
            "country_name": "country name",
            "country_id": "the shop's id of the country (WebCommander)",
            "email": "e-mail (a keyed hash with mirror.personal_data: hash)",
            "phone": "phone (a keyed hash with mirror.personal_data: hash)",
            "mobile": "mobile phone (a keyed hash with mirror.personal_data: hash)",
            "fax": "fax (a keyed hash with mirror.personal_data: hash)",
        },
    ),
    "line_items": (
        "Product lines. Key: (platform, shop, order_id, position).",
        {
            "line_id": "the line's id in the shop",
            "product_id": "the product (a variable product's parent)",
            "variation_id": "the variation, where one was sold",
            "sold_product_id": "what was sold: the variation if there is one, else the product",
            "sku": "the product's SKU as the order gives it (WebCommander's API gives none: "
            "v_order_lines.product_key finds one through the routes' product maps)",
            "name": "the product's name on the order",
            "quantity": "quantity",
            "unit_price": "price of one unit, excluding tax",
            "subtotal": "the line before discounts, excluding tax",
            "subtotal_tax": "tax on the subtotal",
            "tax_class": "the product's tax class",
            "taxable": "whether the line is taxed",
            "shippable": "whether the line is shipped",
            "attributes": "JSON list of {name, value}: the variation's attributes",
            "taxes": "JSON list of {rate_id, total, subtotal}: tax per rate (WooCommerce)",
            **_MONEY_LINE,
        },
    ),
    "tax_lines": (
        "Tax per rate for the whole order. Key: (platform, shop, order_id, position).",
        {
            "tax_line_id": "the tax line's id in the shop",
            "rate_id": "the tax rate's id in the shop",
            "code": "the rate's code (WebCommander gives one line, TAX)",
            "label": "the rate's label",
            "rate_percent": "the rate in percent where the API gives it (WooCommerce REST v3); NULL "
            "from the legacy v2 API and WebCommander, whose APIs give no rate",
            "compound": "whether the rate is compound",
            "tax_total": "tax of this rate on the cart (items and fees)",
            "shipping_tax_total": "tax of this rate on shipping",
            "combined_total": "tax_total + shipping_tax_total (all the legacy WooCommerce API gives)",
        },
    ),
    "shipping_lines": (
        "Shipping methods charged. Key: (platform, shop, order_id, position).",
        {
            "shipping_line_id": "the line's id in the shop",
            "method_id": "the shipping method's id",
            "method_title": "the shipping method's name",
            **_MONEY_LINE,
        },
    ),
    "fee_lines": (
        "Fees charged. Key: (platform, shop, order_id, position).",
        {"fee_line_id": "the line's id in the shop", "name": "the fee's name", **_MONEY_LINE},
    ),
    "coupon_lines": (
        "Coupons applied. Key: (platform, shop, order_id, position).",
        {
            "coupon_line_id": "the line's id in the shop",
            "code": "the coupon code",
            "discount": "discount the coupon gave, excluding tax",
            "discount_tax": "tax on that discount",
        },
    ),
    "payments": (
        "Payments received. Key: (platform, shop, order_id, position).",
        {
            "payment_id": "the payment's id in the shop",
            "gateway": "the payment gateway's code",
            "gateway_name": "the payment gateway's name",
            "amount": "amount paid, including tax",
            "surcharge": "surcharge charged with the payment",
            "status": "canonical payment status",
            "status_raw": "the payment status as the shop named it",
            "paid_at": "when it was paid",
            "transaction_id": "the gateway's transaction id",
            "payer_info": "what the shop says of the payer",
        },
    ),
    "refunds": (
        "Money returned to the customer; amount is positive. Key: (platform, shop, order_id, position).",
        {
            "refund_id": "the refund's id in the shop",
            "amount": "amount refunded, including tax, positive",
            "reason": "why, as entered in the shop",
            "created_at": "when the refund was made",
            "payment_id": "the payment it refunds, where the shop says",
            "gateway": "the gateway that refunded",
            "refunded_by": "who refunded",
        },
    ),
    "refund_lines": (
        "What each refund gave back, per item. Key: (platform, shop, order_id, refund_position, position).",
        {
            "refund_position": "the refund's position in refunds",
            "refund_id": "the refund's id in the shop",
            "line_item_id": "the refunded order line (line_items.line_id)",
            "product_id": "the refunded product",
            "quantity": "quantity refunded",
            "amount": "amount refunded for the item, excluding tax",
            "tax": "tax refunded for the item",
            "kind": "product, shipping or fee: which of the order's lines it refunds",
        },
    ),
    "comments": (
        "Notes on the order. Key: (platform, shop, order_id, position).",
        {
            "comment_id": "the note's id in the shop",
            "text": "the note",
            "author": "who wrote it",
            "customer_visible": "whether the customer sees it",
            "by_admin": "whether a shop admin wrote it",
            "created_at": "when it was written",
        },
    ),
    "shipments": (
        "Shipments. Key: (platform, shop, order_id, position).",
        {
            "shipment_id": "the shipment's id in the shop",
            "method": "shipping method or carrier",
            "tracking": "tracking number or link",
            "shipped_at": "when it was shipped",
            "item_ids": "the shipped order lines (line_items.line_id)",
        },
    ),
    "raw_orders": (
        "Each order as the shop listed it. Key: (platform, shop, order_id).",
        {
            "payload": "the order's own bytes of the list page, JSON text (NULL with mirror.personal_data "
            "hash or drop)",
            "content_hash": "as orders.content_hash",
            "source_url": "the page it was read from, without credentials",
            "received_at": "when it was read",
            "details": "JSON of what was fetched beside it (WooCommerce _refunds, _notes); NULL if nothing",
        },
    ),
    "quarantine": (
        "Records the mapping could not read, kept whole until a later run maps them.",
        {
            "record_id": "the record's id, where it has one",
            "path": "where in the record the problem is (items[3].price)",
            "reason": "what is wrong there",
            "payload": "the record as received, JSON text (NULL with mirror.personal_data hash or drop)",
            "content_hash": "its content hash",
            "source_url": "the page it was read from",
            "quarantined_at": "when it was last seen bad",
        },
    ),
    "order_events": (
        "Observed changes of an order, append-only: new, changed (status, payment status, total or "
        "refunded total), disappeared, reappeared.",
        {
            "observed_at": "when ordersync saw the change",
            "kind": "new, changed, disappeared or reappeared",
            "status_before": "status before the change",
            "status": "status after it",
            "payment_status_before": "payment status before",
            "payment_status": "payment status after",
            "total_before": "total before",
            "total": "total after",
            "refunded_total_before": "refunded total before",
            "refunded_total": "refunded total after",
            "updated_at": "the order's own updated_at at the change",
        },
    ),
    "shops": (
        "The shops the mirror holds orders of, one row each.",
        {
            "shop": "the shop's name in the config; orders.shop refers to it",
            "platform": "webcommander or woocommerce",
            "api": "the API the mirror is fed from: external-app (WebCommander), wc/v3 or wc-api/v2 "
            "(WooCommerce)",
            "timezone": "the shop's IANA time zone: the views' day_local is the calendar day in this zone",
            "currency": "the shop's default currency (each order keeps its own in orders.currency)",
            "base_url": "the shop's address, without credentials or query",
            "updated_at": "when a run last wrote this row (UTC)",
        },
    ),
    "product_map": (
        "The routes' product maps (sync.routes[].products and product_ids), one row per entry, so that "
        "a product without a SKU of its own (every WebCommander line) has the SKU another shop gives it. "
        "Rewritten for a shop at each of its runs.",
        {
            "shop": "the shop whose product this is (shops.shop)",
            "product_id": "the product's id in that shop (line_items.sold_product_id)",
            "sku": "the SKU it is sold under elsewhere (a route's products: SKU -> this id); NULL when "
            "the entry names a peer product instead",
            "peer_shop": "the shop of the same product, for a product_ids entry",
            "peer_product_id": "the same product's id in peer_shop",
            "route": "the route the entry comes from (source->target)",
        },
    ),
    "mirror_meta": (
        "The file's own history: one-time migrations it has had (paid_total: net) and a primary key "
        "it could not be given (key:<table>, with the reason).",
        {
            "key": "what the entry is about",
            "value": "its state, or the reason a key could not be declared",
            "updated_at": "when it was written",
        },
    ),
    "mirror_batches": (
        "The batches written into this mirror, numbered per shop by the state store's order versions: "
        "a shop's latest number here equal to the state's means the mirror holds every version.",
        {
            "platform": "the shop's platform",
            "shop": "the shop (shops.shop)",
            "seq": "the batch's number among the shop's batches (the state store's order_versions.seq)",
            "run_id": "the run that wrote it (runs.run_id)",
            "orders": "orders in the batch (changed, new or unchanged)",
            "written_at": "when it was committed",
        },
    ),
    "runs": (
        "Lineage: each run that wrote to this file and what came of it.",
        {
            "run_id": "the run's id in the state store's run history; orders.run_id refers to it",
            "shop": "the shop the run synced",
            "kind": "backfill or sync",
            "status": "ok, incomplete (the listing could not be proven complete), failed or abandoned "
            "(stopped)",
            "started_at": "when the run began (UTC)",
            "finished_at": "when it ended (UTC)",
            "fetched": "orders read from the shop",
            "loaded": "orders written to this file (new or changed)",
            "unchanged": "orders read and found unchanged (not rewritten)",
            "quarantined": "records that could not be mapped (see quarantine)",
            "error": "why it failed or stopped, if it did",
        },
    ),
    "sync_links": (
        "Write-back: the same order in two shops (a replica and its source, or two linked orders), as "
        "the state store knows them. Replaced whole at each publish.",
        {
            "source_shop": "the shop the order came from",
            "source_order_id": "its id there",
            "target_shop": "the shop it was written to",
            "target_order_id": "its id there",
            "created_at": "when the link was made",
            "total_difference": "the replica's total minus its source's when it was made (the target's "
            "own tax rules); NULL when they were equal or the link is not a replica",
        },
    ),
    "sync_operations": (
        "Write-back: every operation in the outbox and its outcome. Replaced whole at each publish.",
        {
            "id": "the operation's id in the outbox",
            "idempotency_key": "the key that makes it take effect once",
            "shop": "the shop written to",
            "kind": "what it does: set_status, add_comment, create_refund, record_payment, cancel_order, "
            "send_invoice, create_order, ...",
            "order_id": "the order written to, in that shop",
            "origin": "what queued it: route (a change in another shop) or manual (ordersync push)",
            "source_shop": "where the change came from, for a routed operation",
            "source_order_id": "the order that changed there",
            "status": "pending, sending, done, dead (gave up), superseded (lost a conflict) or dropped",
            "attempts": "tries so far",
            "last_error": "why the last try failed",
            "result": "what the shop answered when it was applied (JSON text)",
            "summary": "the operation in words",
            "created_at": "when it was queued",
            "next_attempt_at": "when it is tried next",
            "done_at": "when it took effect",
        },
    ),
    "sync_conflicts": (
        "Write-back: both shops changed one field of a linked order before either change was applied.",
        {
            "id": "the conflict's id",
            "field": "status or payment_status",
            "shop_a": "one shop",
            "order_a": "the order there",
            "value_a": "its new value there",
            "changed_a": "when it changed there",
            "shop_b": "the other shop",
            "order_b": "the order there",
            "value_b": "its new value there",
            "changed_b": "when it changed there",
            "policy": "what decided: latest, or the name of the shop that is the source of truth",
            "winner_shop": "the shop whose value won",
            "outcome": "what came of it, in words ('woocommerce kept its status')",
            "detected_at": "when the conflict was seen",
        },
    ),
}


def description(table: str, column: str) -> str | None:
    about = TABLES.get(table)
    if about is None:
        return None
    return about[1].get(column) or _COMMON.get(column)


def pending_comments(con: object, *, view_columns: bool = True) -> list[str]:
    """The COMMENT ON statements whose text the file does not hold yet: none after the first run, so
    opening a mirror does not rewrite its catalog each time. A DuckLake keeps no comments on a view's
    columns (``view_columns=False``); its views' own comments and every table's are kept."""
    rows = con.execute(  # type: ignore[attr-defined]
        "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE NOT internal"
    ).fetchall()
    tables = dict(con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall())  # type: ignore[attr-defined]
    columns: dict[str, list[str]] = {}
    held: dict[tuple[str, str | None], str | None] = {}
    for table, column, comment in rows:
        columns.setdefault(table, []).append(column)
        held[(table, column)] = comment
    for table, comment in tables.items():
        held[(table, None)] = comment
    wanted = []
    for table, (about, _) in TABLES.items():
        if table not in columns:
            continue
        if held.get((table, None)) != about:
            wanted.append((table, None, about))
        for column in columns[table]:
            text = description(table, column)
            if text and held.get((table, column)) != text:
                wanted.append((table, column, text))

    from ordersync.mirror.views import COMMENTS as VIEW_COMMENTS
    from ordersync.mirror.views import column_comment

    for view in VIEW_COMMENTS if view_columns else ():
        for column in columns.get(view, []):
            text = column_comment(view, column)
            if text and held.get((view, column)) != text:
                wanted.append((view, column, text))
    return [
        f"COMMENT ON TABLE {t} IS {sql_text(x)}"
        if c is None
        else f"COMMENT ON COLUMN {t}.{c} IS {sql_text(x)}"
        for t, c, x in wanted
    ]


def table_columns() -> dict[str, list[tuple[str, str]]]:
    """Every described table's columns and SQL types, in the file's order."""
    from ordersync.mirror.schema import (
        MIRROR_BATCHES,
        MIRROR_META,
        ORDER_EVENTS,
        ORDERS_MAINTAINED,
        PRODUCT_MAP,
        QUARANTINE,
        RUNS,
        SHOPS,
    )
    from ordersync.mirror.schema import TABLES as SCHEMA
    from ordersync.mirror.sync_state import SYNC_TABLES

    return {
        **SCHEMA,
        **SYNC_TABLES,
        "orders": [*SCHEMA["orders"], *ORDERS_MAINTAINED],
        "quarantine": QUARANTINE,
        "order_events": ORDER_EVENTS,
        "shops": SHOPS,
        "runs": RUNS,
        "product_map": PRODUCT_MAP,
        "mirror_meta": MIRROR_META,
        "mirror_batches": MIRROR_BATCHES,
    }


def markdown() -> str:
    """The dictionary as Markdown: every table and view the mirror creates, column by column."""
    from ordersync.mirror.coverage import markdown as coverage_markdown
    from ordersync.mirror.views import COMMENTS as VIEW_COMMENTS
    from ordersync.mirror.views import VIEWS, column_comment

    out = [
        "# The mirror's data dictionary",
        "",
        "Generated by `ordersync schema --markdown`; the same text is in the file (`COMMENT ON`).",
        "Money is DECIMAL(18,4) in the order's currency; times are TIMESTAMPTZ instants.",
        "NULL: the shop did not give it.",
    ]
    definitions = table_columns()
    for table, (about, _) in TABLES.items():
        out += ["", f"## `{table}`", "", about, "", "| column | type | meaning |", "|---|---|---|"]
        for column, kind in definitions.get(table, []):
            kind = kind.removesuffix(" PRIMARY KEY")
            out.append(f"| `{column}` | {kind} | {description(table, column) or ''} |")
    out += ["", "# Views"]
    views = view_columns()
    for view in VIEWS:
        about = VIEW_COMMENTS[view][0]
        out += ["", f"## `{view}`", "", about, "", "| column | type | meaning |", "|---|---|---|"]
        for column, kind in views[view]:
            out.append(f"| `{column}` | {kind} | {column_comment(view, column) or ''} |")
    out += ["", *coverage_markdown()]
    return "\n".join(out) + "\n"


def view_columns() -> dict[str, list[tuple[str, str]]]:
    """Each view's columns and types, as DuckDB derives them: from an empty mirror in memory."""
    import duckdb

    from ordersync.mirror.schema import create_statements
    from ordersync.mirror.sync_state import sync_create_statements
    from ordersync.mirror.views import create_view_statements

    with duckdb.connect() as con:
        for statement in [*create_statements(), *sync_create_statements(), *create_view_statements()]:
            con.execute(statement)
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() c "
            "JOIN duckdb_views() v ON v.view_name = c.table_name AND NOT v.internal ORDER BY column_index"
        ).fetchall()
    found: dict[str, list[tuple[str, str]]] = {}
    for view, column, kind in rows:
        found.setdefault(view, []).append((column, kind))
    return found
