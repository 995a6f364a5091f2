"""Order versions: content hashes, the routing feed and the notes plan's inputs, out of the mirror.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_versions",
        sa.Column("platform", sa.String(50), nullable=False),
        sa.Column("shop", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(100), nullable=False),
        sa.Column(
            "content_hash",
            sa.String(64),
            nullable=False,
            comment="the order as last mapped: unchanged, skipped",
        ),
        sa.Column(
            "seq",
            sa.BigInteger(),
            nullable=False,
            comment="the shop's batch that last changed it: the feed's order",
        ),
        sa.Column("status", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "facts",
            sa.Text(),
            nullable=False,
            comment="JSON: number, payment status, currency and the ids (and texts) of comments, refunds "
            "and payments, which routing and the notes refresh read",
        ),
        sa.PrimaryKeyConstraint("platform", "shop", "order_id", name=op.f("pk_order_versions")),
        comment="Each order's latest mapped version: what a sync skips as unchanged, the change feed "
        "routing consumes (by seq) and the notes refresh plans from. The mirror is a projection of it.",
    )
    op.create_index("ix_order_versions_feed", "order_versions", ["shop", "seq"])


def downgrade() -> None:
    op.drop_index("ix_order_versions_feed", table_name="order_versions")
    op.drop_table("order_versions")
