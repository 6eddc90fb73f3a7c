"""central_replicas: live replicas by heartbeat, for partitioning sites without $share (#15)

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "central_replicas",
        sa.Column("replica", sa.String(length=48), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("replica"),
    )


def downgrade() -> None:
    op.drop_table("central_replicas")
