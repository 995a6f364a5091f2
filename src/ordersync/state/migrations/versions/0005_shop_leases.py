"""Shop leases: one run per shop at a time, across processes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shop_leases",
        sa.Column("shop", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False, comment="one run's own token"),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False, comment="backfill, sync, ..."),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop", name=op.f("pk_shop_leases")),
        comment="Which process runs each shop now: one run per shop at a time, across processes and "
        "hosts. Renewed while the run goes on; taken over once it expires or its process is gone.",
    )


def downgrade() -> None:
    op.drop_table("shop_leases")
