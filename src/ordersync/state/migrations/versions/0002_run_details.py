"""Run details and a quarantine lookup by record.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column(
                "details",
                sa.JSON(),
                nullable=True,
                comment="what else the run measured: requests, pages, notes re-read",
            )
        )
    op.create_index("ix_quarantine_record", "quarantine", ["shop", "record_id"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_record", table_name="quarantine")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("details")
