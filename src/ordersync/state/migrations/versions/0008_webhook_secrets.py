"""Webhook secrets: what `ordersync webhooks install` registered, and WooCommerce's own status of it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("shop", sa.String(200), nullable=False),
        sa.Column(
            "secret", sa.Text(), nullable=False, comment="verifies deliveries; never printed or logged"
        ),
        sa.Column("delivery_url", sa.Text(), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "shop_status", sa.String(50), nullable=True, comment="WooCommerce's status of the webhooks"
        ),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("shop", name=op.f("pk_webhook_secrets")),
        comment="The webhooks `ordersync webhooks install` registered per shop: the secret deliveries are "
        "verified with (unless the config gives one) and what WooCommerce last said of them.",
    )


def downgrade() -> None:
    op.drop_table("webhook_secrets")
