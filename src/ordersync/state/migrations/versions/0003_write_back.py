"""Write-back: outbox targets, leases and baselines; tracked orders; conflicts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _outbox_columns() -> list[sa.Column]:
    return [
        sa.Column(
            "order_id", sa.String(100), nullable=True, comment="the target order (none for a replication)"
        ),
        sa.Column("origin", sa.String(20), nullable=True, comment="route or manual"),
        sa.Column("source_shop", sa.String(200), nullable=True),
        sa.Column("source_order_id", sa.String(100), nullable=True),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), nullable=True, comment="when the source change happened"
        ),
        sa.Column(
            "sent_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="set before a send: it may have taken effect",
        ),
        sa.Column(
            "baseline",
            sa.JSON(),
            nullable=True,
            comment="the target's ids before the send, to recognise its effect",
        ),
        sa.Column(
            "lease_until", sa.DateTime(timezone=True), nullable=True, comment="a worker holds it until then"
        ),
        sa.Column("claimed_by", sa.JSON(), nullable=True, comment="pid and host of that worker"),
    ]


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        for column in _outbox_columns():
            batch.add_column(column)
    op.create_index("ix_outbox_target", "outbox", ["shop", "order_id"])
    op.create_table(
        "tracked_orders",
        sa.Column("shop", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(100), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop", "order_id", name="pk_tracked_orders"),
        comment="What a linked order looked like when last routed, and the effects ordersync wrote into it "
        "that its next extraction will show (so they are not echoed back).",
    )
    op.create_table(
        "conflicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("field", sa.String(50), nullable=False),
        sa.Column("shop_a", sa.String(200), nullable=False),
        sa.Column("order_a", sa.String(100), nullable=False),
        sa.Column("value_a", sa.Text(), nullable=True),
        sa.Column("changed_a", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shop_b", sa.String(200), nullable=False),
        sa.Column("order_b", sa.String(100), nullable=False),
        sa.Column("value_b", sa.Text(), nullable=True),
        sa.Column("changed_b", sa.DateTime(timezone=True), nullable=True),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("winner_shop", sa.String(200), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conflicts"),
        comment="Both shops changed the same field of a linked order: who won, by which policy.",
    )


def downgrade() -> None:
    op.drop_table("conflicts")
    op.drop_table("tracked_orders")
    op.drop_index("ix_outbox_target", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        for column in reversed(_outbox_columns()):
            batch.drop_column(column.name)
