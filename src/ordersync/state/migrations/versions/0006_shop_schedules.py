"""Shop schedules: a scheduled firing runs on one daemon of a cluster.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shop_schedules",
        sa.Column("shop", sa.String(200), nullable=False),
        sa.Column("next_due", sa.DateTime(timezone=True), nullable=False, comment="no firing before this"),
        sa.Column(
            "claimed_by", sa.String(300), nullable=False, comment="the daemon that took the last firing"
        ),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop", name=op.f("pk_shop_schedules")),
        comment="The cluster's schedule per shop: each daemon fires on its own clock, and the one whose "
        "conditional update moves next_due on runs that firing; the others skip it.",
    )


def downgrade() -> None:
    op.drop_table("shop_schedules")
