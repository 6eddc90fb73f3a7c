"""pass_hints: device-bound passes stamped with the list version they were bound at (#12)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bound_version", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_passes_site_bound_version", ["site", "bound_version"])
    # Passes bound before this revision: older than any version, so in a snapshot, not a delta.
    op.execute("UPDATE passes SET bound_version = 0 WHERE text LIKE 'MJ2:%'")


def downgrade() -> None:
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.drop_index("ix_passes_site_bound_version")
        batch_op.drop_column("bound_version")
