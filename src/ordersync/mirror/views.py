"""Analyst views: the questions people ask of both shops, answered in one place."""

from __future__ import annotations

VIEWS: dict[str, str] = {
    # One row per order with its addresses' countries and money net of refunds.
    "v_orders": """
        SELECT o.*, o.total - o.refunded_total AS net_total,
               b.country_code AS billing_country_code, b.country_id AS billing_country_id,
               s.country_code AS shipping_country_code, s.country_id AS shipping_country_id
        FROM orders o
        LEFT JOIN order_addresses b
          ON b.platform = o.platform AND b.shop = o.shop AND b.order_id = o.order_id AND b.kind = 'billing'
        LEFT JOIN order_addresses s
          ON s.platform = o.platform AND s.shop = o.shop AND s.order_id = o.order_id AND s.kind = 'shipping'
    """,
    # Sales per day and shop, so both platforms compare in one query.
    "v_daily_sales": """
        SELECT platform, shop, currency, CAST(created_at AS DATE) AS day,
               count(*) AS orders, sum(total) AS gross, sum(refunded_total) AS refunded,
               sum(total - refunded_total) AS net, sum(tax_total) AS tax
        FROM orders
        WHERE status NOT IN ('cancelled', 'failed', 'deleted', 'draft')
        GROUP BY ALL
    """,
    # Line items with the order's status and date, the usual starting point for product questions.
    "v_order_lines": """
        SELECT l.*, o.status AS order_status, o.created_at AS order_created_at, o.currency
        FROM line_items l
        JOIN orders o ON o.platform = l.platform AND o.shop = l.shop AND o.order_id = l.order_id
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
}


def create_view_statements() -> list[str]:
    return [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items()]
