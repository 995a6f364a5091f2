"""Analyst views: the questions people ask of both shops, answered in one place."""

from __future__ import annotations

from ordersync.mirror.coverage import fill_view
from ordersync.mirror.dictionary import description
from ordersync.mirror.schema import sql_text

VIEWS: dict[str, str] = {
    # One row per order with its addresses' countries, money net of refunds, and its day twice: in the
    # shop's time zone (from `shops`) and in UTC, so no answer depends on the session's TimeZone.
    "v_orders": """
        SELECT o.*, o.total - o.refunded_total AS net_total,
               b.country_code AS billing_country_code, b.country_id AS billing_country_id,
               s.country_code AS shipping_country_code, s.country_id AS shipping_country_id,
               CAST(timezone(coalesce(sh.timezone, 'UTC'), o.created_at) AS DATE) AS day_local,
               CAST(timezone('UTC', o.created_at) AS DATE) AS day_utc
        FROM orders o
        LEFT JOIN shops sh ON sh.shop = o.shop
        LEFT JOIN order_addresses b
          ON b.platform = o.platform AND b.shop = o.shop AND b.order_id = o.order_id AND b.kind = 'billing'
        LEFT JOIN order_addresses s
          ON s.platform = o.platform AND s.shop = o.shop AND s.order_id = o.order_id AND s.kind = 'shipping'
    """,
    # Sales per shop, currency and day: paid orders on the day they were placed, refunds on the day
    # they were made. `_sales_events` holds both; the two views below group it by the shop's local
    # day and by the UTC day.
    "_sales_events": """
        SELECT o.platform, o.shop, o.currency, o.created_at AS happened_at, 1 AS orders, o.total AS gross,
               o.tax_total AS tax, CAST(0 AS DECIMAL(18,4)) AS refunded, sh.timezone AS shop_timezone
        FROM orders o LEFT JOIN shops sh ON sh.shop = o.shop
        WHERE o.payment_status IN ('paid', 'partially_refunded', 'refunded')
          AND o.status NOT IN ('deleted', 'draft') AND o.missing_since IS NULL
        UNION ALL
        SELECT o.platform, o.shop, o.currency,
               coalesce(r.created_at, o.updated_at, o.created_at) AS happened_at,
               0 AS orders, CAST(0 AS DECIMAL(18,4)) AS gross, CAST(0 AS DECIMAL(18,4)) AS tax,
               r.amount AS refunded, sh.timezone AS shop_timezone
        FROM refunds r
        JOIN orders o ON o.platform = r.platform AND o.shop = r.shop AND o.order_id = r.order_id
        LEFT JOIN shops sh ON sh.shop = o.shop
        WHERE o.status NOT IN ('deleted', 'draft') AND o.missing_since IS NULL
    """,
    "v_daily_sales": """
        SELECT platform, shop, currency,
               CAST(timezone(coalesce(shop_timezone, 'UTC'), happened_at) AS DATE) AS day_local,
               sum(orders) AS orders, sum(gross) AS gross, sum(refunded) AS refunded,
               sum(gross) - sum(refunded) AS net, sum(tax) AS tax
        FROM _sales_events
        GROUP BY ALL
    """,
    "v_daily_sales_utc": """
        SELECT platform, shop, currency, CAST(timezone('UTC', happened_at) AS DATE) AS day_utc,
               sum(orders) AS orders, sum(gross) AS gross, sum(refunded) AS refunded,
               sum(gross) - sum(refunded) AS net, sum(tax) AS tax
        FROM _sales_events
        GROUP BY ALL
    """,
    # Each shop's product id -> the SKU it is known by across shops: a route's `products` entry names
    # it directly; a `product_ids` entry names the peer shop's product, whose SKU its lines give.
    # A WooCommerce variation is named 'parent:variation' in a map; its lines sell the variation.
    "v_product_map": """
        SELECT shop, split_part(product_id, ':', -1) AS product_id, sku, route
        FROM product_map WHERE sku IS NOT NULL
        UNION ALL
        SELECT m.shop, split_part(m.product_id, ':', -1) AS product_id, min(l.sku) AS sku, m.route
        FROM product_map m
        JOIN line_items l
          ON l.shop = m.peer_shop
         AND coalesce(l.sold_product_id, l.product_id) = split_part(m.peer_product_id, ':', -1)
        WHERE m.sku IS NULL AND l.sku IS NOT NULL AND l.sku <> ''
        GROUP BY ALL
    """,
    # Line items with the order's status and date, the usual starting point for product questions,
    # and the product's key across shops: its SKU, the SKU the routes' product maps give it, or else
    # (shop:product id) when nothing ties it to another shop's product.
    "v_order_lines": """
        SELECT l.*, o.status AS order_status, o.created_at AS order_created_at, o.currency,
               o.payment_status AS order_payment_status,
               coalesce(nullif(l.sku, ''), pm.sku,
                        l.shop || ':' || coalesce(l.sold_product_id, l.product_id, l.name)) AS product_key
        FROM line_items l
        JOIN orders o ON o.platform = l.platform AND o.shop = l.shop AND o.order_id = l.order_id
        LEFT JOIN (SELECT shop, product_id, min(sku) AS sku FROM v_product_map GROUP BY ALL) pm
          ON pm.shop = l.shop AND pm.product_id = coalesce(l.sold_product_id, l.product_id)
    """,
    # The product dimension: one row per product across shops (by product_key), with the names and
    # ids each shop gives it.
    "v_products": """
        SELECT product_key, arg_max(name, order_created_at) AS name,
               list(DISTINCT shop ORDER BY shop) AS shops,
               list(DISTINCT shop || ':' || coalesce(sold_product_id, product_id, '?')
                    ORDER BY shop || ':' || coalesce(sold_product_id, product_id, '?')) AS shop_product_ids,
               min(order_created_at) AS first_sold_at, max(order_created_at) AS last_sold_at
        FROM v_order_lines
        GROUP BY product_key
    """,
    # What each product sold, per currency: lines of paid orders (the sales of v_daily_sales).
    "v_product_sales": """
        SELECT l.product_key, arg_max(l.name, l.order_created_at) AS name, l.currency,
               count(DISTINCT (l.platform, l.shop, l.order_id)) AS orders, sum(l.quantity) AS units,
               sum(l.total) AS revenue
        FROM v_order_lines l
        JOIN orders o ON o.platform = l.platform AND o.shop = l.shop AND o.order_id = l.order_id
        WHERE o.payment_status IN ('paid', 'partially_refunded', 'refunded')
          AND o.status NOT IN ('deleted', 'draft') AND o.missing_since IS NULL
        GROUP BY l.product_key, l.currency
    """,
    # The customer dimension: a registered customer by the shop's id, a guest by a hash of the e-mail
    # (lower-cased), and email_key to find one person across shops.
    "v_customers": """
        SELECT CASE WHEN customer_id IS NOT NULL THEN shop || ':' || customer_id
                    WHEN customer_email IS NOT NULL THEN 'guest:' || sha256(lower(trim(customer_email)))
               END AS customer_key,
               any_value(platform) AS platform, shop, any_value(customer_id) AS customer_id,
               customer_id IS NULL AS guest,
               sha256(lower(trim(min(customer_email)))) AS email_key,
               count(*) AS orders,
               count(*) FILTER (payment_status IN ('paid', 'partially_refunded', 'refunded')) AS paid_orders,
               min(created_at) AS first_order_at, max(created_at) AS last_order_at
        FROM orders
        WHERE customer_id IS NOT NULL OR customer_email IS NOT NULL
        GROUP BY customer_key, shop, guest
    """,
    # Tax per line and per rate (WooCommerce's per-item `taxes`), unnested from line_items.taxes.
    "v_line_taxes": """
        SELECT l.platform, l.shop, l.order_id, l.line_id, l.sku,
               t.rate_id, t.total AS tax, t.subtotal AS subtotal_tax
        FROM line_items l,
             unnest(from_json(l.taxes, '[{"rate_id": "VARCHAR", "total": "DECIMAL(18,4)",
                                          "subtotal": "DECIMAL(18,4)"}]')) AS u(t)
    """,
    # Per shop: how many orders are in each status, with their value.
    "v_status_summary": """
        SELECT platform, shop, status, payment_status, count(*) AS orders, sum(total) AS total
        FROM orders GROUP BY ALL
    """,
    # Orders the shop's listing no longer shows (deleted there, or hidden): kept, with when they went.
    "v_missing_orders": """
        SELECT * FROM v_orders WHERE missing_since IS NOT NULL
    """,
    # One row per stay of an order in a status: from the event that put it there (first seen, status
    # changed, back in the listing) to the next such event or its disappearance; payment or money
    # changes within a status do not end a stay. `left_at` is NULL while the order is still in it, and
    # `seconds_in_status` then runs to now. A stay begun when the mirror first saw the order
    # (`first_seen`) started at an unknown earlier time: in a backfill, long before `entered_at`.
    "v_order_events": """
        WITH stays AS (
            SELECT *,
                   lead(observed_at) OVER w AS left_at,
                   lead(kind) OVER w AS left_by,
                   lead(status) OVER w AS next_status
            FROM order_events
            WHERE kind IN ('new', 'reappeared', 'disappeared') OR status IS DISTINCT FROM status_before
            WINDOW w AS (
                PARTITION BY platform, shop, order_id
                -- a run writes before it checks presence, so at one instant writes' events come first
                ORDER BY observed_at, CASE kind WHEN 'new' THEN 0 WHEN 'changed' THEN 1
                                                WHEN 'reappeared' THEN 2 ELSE 3 END
            )
        )
        SELECT platform, shop, order_id, kind, kind = 'new' AS first_seen,
               status_before, status, payment_status, total, refunded_total, updated_at,
               observed_at AS entered_at, left_at, left_by, next_status,
               epoch(coalesce(left_at, now()) - observed_at) AS seconds_in_status
        FROM stays
        WHERE kind <> 'disappeared'
    """,
    # Per shop and status: how long finished stays lasted, and how many orders are in it now. A stay
    # that began before the mirror first saw the order has no known start, so it is left out of the
    # durations (a backfill would otherwise make every status look brief).
    "v_status_durations": """
        SELECT platform, shop, status,
               count(*) FILTER (left_at IS NOT NULL AND NOT first_seen) AS stays,
               avg(seconds_in_status) FILTER (left_at IS NOT NULL AND NOT first_seen) / 3600 AS avg_hours,
               median(seconds_in_status) FILTER (left_at IS NOT NULL AND NOT first_seen) / 3600
                   AS median_hours,
               max(seconds_in_status) FILTER (left_at IS NOT NULL AND NOT first_seen) / 3600 AS max_hours,
               count(*) FILTER (left_at IS NULL) AS orders_in_status
        FROM v_order_events
        GROUP BY ALL
    """,
    # One row per link between an order and its copy in another shop, with both orders as the mirror
    # holds them. LEFT JOINs: a link whose order is not mirrored yet still shows, with NULLs. Links
    # name shops, not platforms; shop names are unique across the config, so (shop, order_id) is enough.
    "v_order_links": """
        SELECT l.source_shop, l.source_order_id, s.platform AS source_platform, s.number AS source_number,
               s.status AS source_status, s.payment_status AS source_payment_status,
               s.total AS source_total, s.currency AS source_currency,
               l.target_shop, l.target_order_id, t.platform AS target_platform, t.number AS target_number,
               t.status AS target_status, t.payment_status AS target_payment_status,
               t.total AS target_total, t.currency AS target_currency,
               l.created_at AS linked_at, l.total_difference AS total_difference_at_link
        FROM sync_links l
        LEFT JOIN orders s ON s.shop = l.source_shop AND s.order_id = l.source_order_id
        LEFT JOIN orders t ON t.shop = l.target_shop AND t.order_id = l.target_order_id
    """,
    # Each write-back operation and its outcome, with the order it wrote to (in `shop`) and the order
    # it came from, by number, as analysts know them; NULL where that order is not mirrored (yet).
    "v_sync_operations": """
        SELECT op.*, t.number AS order_number, t.status AS order_status, s.number AS source_number
        FROM sync_operations op
        LEFT JOIN orders t ON t.shop = op.shop AND t.order_id = op.order_id
        LEFT JOIN orders s ON s.shop = op.source_shop AND s.order_id = op.source_order_id
    """,
}


_SALES_COLUMNS = {
    "orders": "paid orders placed that day: payment_status paid, partially_refunded or refunded (refunded "
    "orders were paid first); unpaid, pending, on-hold, cancelled and failed orders are not sales, nor "
    "deleted or draft orders or orders gone from the shop's listing",
    "gross": "orders.total of those orders (incl. tax and shipping, before refunds)",
    "refunded": "refunds made that day (refunds.amount on refunds.created_at; the order's updated_at "
    "where the shop gives no refund time), whatever day the order was placed",
    "net": "gross minus refunded, for the day",
    "tax": "orders.tax_total of the paid orders placed that day",
}
_LINK_SIDE = {
    f"{side}_{c}": f"the {side} order's {c} (orders.{c}); NULL while it is not mirrored"
    for side in ("source", "target")
    for c in ("platform", "number", "status", "payment_status", "total", "currency")
}
COMMENTS: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "v_orders": (
        "One row per order with its countries, net total and its day in the shop's zone and in UTC.",
        ("orders",),
        {
            "day_local": "the calendar day the order was placed, in the shop's time zone (shops.timezone)",
            "day_utc": "the calendar day the order was placed, in UTC",
            "net_total": "total minus refunded_total",
            "billing_country_code": "the billing address's ISO country code (order_addresses.country_code)",
            "billing_country_id": "the billing address's country id in the shop (WebCommander)",
            "shipping_country_code": "the shipping address's ISO country code",
            "shipping_country_id": "the shipping address's country id in the shop (WebCommander)",
        },
    ),
    "_sales_events": (
        "The rows v_daily_sales adds up: one per paid order (on the time it was placed) and one per "
        "refund (on the time it was made).",
        ("orders",),
        {
            "happened_at": "when the sale or refund happened",
            "orders": "1 for a paid order, 0 for a refund",
            "gross": "the paid order's total, 0 for a refund",
            "tax": "the paid order's tax_total, 0 for a refund",
            "refunded": "the refund's amount, 0 for an order",
            "shop_timezone": "the shop's time zone (shops.timezone)",
        },
    ),
    "v_daily_sales": (
        "Sales per shop, currency and day in the shop's own time zone: paid orders on the day they were "
        "placed, refunds on the day they were made. The same answer in any session TimeZone.",
        ("orders",),
        {"day_local": "the calendar day in the shop's time zone (shops.timezone)", **_SALES_COLUMNS},
    ),
    "v_daily_sales_utc": (
        "v_daily_sales by UTC day instead of the shop's local day.",
        ("orders",),
        {"day_utc": "the calendar day in UTC", **_SALES_COLUMNS},
    ),
    "v_product_map": (
        "Each shop's product id and the SKU it is known by across shops, from the routes' product maps "
        "(directly, or through the peer shop's lines for a product_ids entry).",
        ("product_map",),
        {"sku": "the SKU this shop's product is sold under in the other shop"},
    ),
    "v_order_lines": (
        "Line items with their order's status, payment status, date and currency, and a product key that "
        "is the same for one product in every shop.",
        ("line_items",),
        {
            "order_status": "the order's status (orders.status)",
            "order_payment_status": "the order's payment status (orders.payment_status)",
            "order_created_at": "when the order was placed (orders.created_at)",
            "currency": "the order's currency (orders.currency)",
            "product_key": "the product across shops: the line's SKU, else the SKU the routes' product "
            "maps give its product (v_product_map), else shop:product_id (a product no map ties to another "
            "shop's)",
        },
    ),
    "v_products": (
        "The product dimension: one row per product_key, with the shops and their ids that sell it.",
        ("line_items",),
        {
            "product_key": "the product across shops (v_order_lines.product_key)",
            "name": "the name on its most recent order line",
            "shops": "the shops whose orders have it",
            "shop_product_ids": "shop:product id of each shop's own product",
            "first_sold_at": "the first order with it (orders.created_at)",
            "last_sold_at": "the latest order with it",
        },
    ),
    "v_product_sales": (
        "What each product sold per currency, over paid orders still listed (the sales v_daily_sales "
        "counts).",
        ("line_items",),
        {
            "product_key": "the product across shops (v_order_lines.product_key)",
            "name": "the name on its most recent order line",
            "currency": "the orders' currency (amounts in different currencies are not added)",
            "orders": "paid orders with the product",
            "units": "units sold (line_items.quantity)",
            "revenue": "line_items.total: after discounts, excluding tax, before refunds",
        },
    ),
    "v_customers": (
        "The customer dimension: one row per customer and shop; a registered customer by the shop's id, a "
        "guest by a hash of the e-mail.",
        ("orders",),
        {
            "customer_key": "shop:customer_id for a registered customer, guest:<sha256 of the lower-cased "
            "e-mail> for a guest",
            "guest": "true when the shop has no customer id for these orders",
            "email_key": "sha256 of the lower-cased e-mail (of its keyed hash with mirror.personal_data: "
            "hash): the same person in several shops has the same email_key; NULL with drop, which also "
            "leaves guests out of the view (nothing identifies them)",
            "orders": "orders placed",
            "paid_orders": "orders paid (payment_status paid, partially_refunded or refunded)",
            "first_order_at": "the first order's created_at",
            "last_order_at": "the latest order's created_at",
        },
    ),
    "v_line_taxes": (
        "Tax per line and per rate (WooCommerce REST v3's per-item taxes), from line_items.taxes.",
        ("line_items",),
        {
            "rate_id": "the tax rate's id in the shop (tax_lines.rate_id)",
            "tax": "tax of this rate on the line, after discounts",
            "subtotal_tax": "tax of this rate on the line before discounts",
        },
    ),
    "v_status_summary": (
        "Per shop: how many orders are in each status and payment status, with their value.",
        ("orders",),
        {
            "orders": "number of orders",
            "total": "sum of orders.total (mixes currencies if a shop has several)",
        },
    ),
    "v_missing_orders": (
        "Orders the shop's listing no longer shows (deleted there, or hidden), kept with when they went.",
        ("orders", "v_orders"),
        {},
    ),
    "v_order_events": (
        "One row per stay of an order in a status, from the event that put it there to the next one.",
        ("order_events",),
        {
            "first_seen": "the stay began when the mirror first saw the order: its start is unknown",
            "entered_at": "when the stay began (order_events.observed_at)",
            "left_at": "when it ended; NULL while the order is still in that status",
            "left_by": "the event that ended it: changed, disappeared or reappeared",
            "next_status": "the status the order went to",
            "seconds_in_status": "the stay's length in seconds, to now while it lasts",
        },
    ),
    "v_status_durations": (
        "Per shop and status: how long finished stays lasted, and how many orders are in it now.",
        ("orders",),
        {
            "stays": "finished stays with a known start",
            "avg_hours": "their mean length in hours",
            "median_hours": "their median length in hours",
            "max_hours": "the longest, in hours",
            "orders_in_status": "orders in this status now",
        },
    ),
    "v_order_links": (
        "One row per link between an order and its copy in another shop, with both orders as mirrored.",
        ("sync_links",),
        {
            **_LINK_SIDE,
            "linked_at": "when the link was made (sync_links.created_at)",
            "total_difference_at_link": "target total minus source total when linked (sync_links)",
        },
    ),
    "v_sync_operations": (
        "Each write-back operation and its outcome, with the orders it wrote to and came from, by number.",
        ("sync_operations",),
        {
            "order_number": "the number of the order written to (in shop)",
            "order_status": "that order's status as mirrored",
            "source_number": "the number of the order the change came from",
        },
    ),
    "v_column_fill": (
        "Who fills what, measured: per platform, API, table and column, how many rows have a value.",
        (),
        {
            "table_name": "the mirror table",
            "api": "the API that fed the shop (shops.api)",
            "column_name": "the column",
            "row_count": "rows of that platform and API in the table",
            "filled": "rows where the column is not NULL",
            "fill_percent": "filled / row_count, in percent",
        },
    ),
}
"""Descriptions the file carries (COMMENT ON): an analyst reads them from duckdb_views()/duckdb_columns().
A view column without its own text takes the same column's from the view's sources, in order."""

VIEWS["v_column_fill"] = fill_view()


def column_comment(view: str, column: str) -> str | None:
    about = COMMENTS.get(view)
    if about is None:
        return None
    _, sources, columns = about
    if column in columns:
        return columns[column]
    for source in sources:
        text = column_comment(source, column) if source in COMMENTS else description(source, column)
        if text:
            return text
    return description("orders", column) if column in ("platform", "shop", "order_id") else None


def create_view_statements() -> list[str]:
    """The views and what each is for; their columns' comments follow once the views exist
    (dictionary.pending_comments reads the columns from the file)."""
    statements = [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items()]
    statements.extend(
        f"COMMENT ON VIEW {view} IS {sql_text(about)}" for view, (about, _, _) in COMMENTS.items()
    )
    return statements
