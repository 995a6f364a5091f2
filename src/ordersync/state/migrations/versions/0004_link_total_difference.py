"""A replica's total difference from its source, on its link.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(
            sa.Column(
                "total_difference",
                sa.Numeric(18, 4),
                nullable=True,
                comment="a replica's total minus its source's when it was made (the target's own tax "
                "rules); NULL when they were equal or the link is not a replica",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.drop_column("total_difference")
