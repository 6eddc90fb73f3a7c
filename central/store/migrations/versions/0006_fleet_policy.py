"""fleet policy: site and gate policies, signing keys, lockdowns and emergency releases

Revision ID: 0006
Revises: 0007
Create Date: 2026-12-01 08:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_policies",
        sa.Column("site", sa.String(length=48), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("site"),
    )
    op.create_table(
        "gate_policies",
        sa.Column("gate_id", sa.Integer(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(["gate_id"], ["gates.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("gate_id"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("key_dir", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.create_index("ix_signing_keys_purpose_state", ["purpose", "state"], unique=False)
    op.create_table(
        "lockdowns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("site", sa.String(length=48), nullable=False),
        sa.Column("gates", sa.JSON(), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(length=80), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lockdowns", schema=None) as batch_op:
        batch_op.create_index("ix_lockdowns_site_active", ["site", "ended_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lockdowns", schema=None) as batch_op:
        batch_op.drop_index("ix_lockdowns_site_active")
    op.drop_table("lockdowns")
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_signing_keys_purpose_state")
    op.drop_table("signing_keys")
    op.drop_table("gate_policies")
    op.drop_table("site_policies")
