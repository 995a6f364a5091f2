"""Webhook deliveries: what each verified WooCommerce delivery asked for, so a repeat changes nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shop", sa.String(200), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False, comment="X-WC-Webhook-Delivery-ID"),
        sa.Column("body_sha256", sa.String(64), nullable=False, comment="the body's hash; never the body"),
        sa.Column("webhook_id", sa.String(50), nullable=True),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("order_id", sa.String(100), nullable=True),
        sa.Column("modified", sa.String(50), nullable=True, comment="the order's date_modified_gmt as sent"),
        sa.Column("outcome", sa.String(20), nullable=False, comment="queued, duplicate, seen or ignored"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("shop", "delivery_id", "body_sha256", name="uq_webhook_deliveries_shop"),
        comment="Verified WooCommerce webhook deliveries: a delivery id and body seen before, or an order "
        "version (id, date_modified) already queued, changes nothing.",
    )
    op.create_index("ix_webhook_deliveries_order", "webhook_deliveries", ["shop", "order_id", "modified"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_order", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
