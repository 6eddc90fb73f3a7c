"""people (for `person forget`), API key expiry, login back-off instead of a failure log

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 07:00:00

Existing passes get one person per distinct (site, holder, unit, phone).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(length=48), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("unit", sa.String(length=80), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_people_site_holder", "people", ["site", "holder"], unique=False)
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_passes_person", "people", ["person_id"], ["id"])
        batch_op.create_index("ix_passes_person", ["person_id"], unique=False)
    op.execute(
        "INSERT INTO people (site, holder, unit, phone, created_at)"
        " SELECT site, holder, unit, phone, min(issued_at) FROM passes"
        " GROUP BY site, holder, unit, phone"
    )
    op.execute(
        "UPDATE passes SET person_id = (SELECT min(p.id) FROM people p"
        " WHERE p.site = passes.site AND p.holder = passes.holder"
        " AND (p.unit = passes.unit OR (p.unit IS NULL AND passes.unit IS NULL))"
        " AND (p.phone = passes.phone OR (p.phone IS NULL AND passes.phone IS NULL)))"
    )

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))

    op.drop_index("ix_login_failures_user_at", table_name="login_failures")
    op.drop_table("login_failures")
    op.create_table(
        "login_throttle",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_index("ix_login_throttle_last_at", "login_throttle", ["last_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_throttle_last_at", table_name="login_throttle")
    op.drop_table("login_throttle")
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_failures_user_at", "login_failures", ["username", "at"])
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("passes", schema=None) as batch_op:
        batch_op.drop_index("ix_passes_person")
        batch_op.drop_constraint("fk_passes_person", type_="foreignkey")
        batch_op.drop_column("person_id")
    op.drop_index("ix_people_site_holder", table_name="people")
    op.drop_table("people")
