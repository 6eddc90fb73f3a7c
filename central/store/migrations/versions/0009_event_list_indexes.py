"""event_list_indexes: every event-list filter served by an index, newest first (#15)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (name, columns, PostgreSQL-only predicate): see central/store/tables.py for why.
INDEXES = [
    ("ix_events_site_id", ["site", "id"], None),
    ("ix_events_gate_id", ["gate", "id"], None),
    ("ix_events_type_id", ["type", "id"], "type <> 'decision'"),
    ("ix_events_reason_id", ["reason", "id"], "reason <> 'ok'"),
    ("ix_events_site_denied_id", ["site", "granted", "id"], "NOT granted"),
    ("ix_events_at", ["at"], None),
]


def upgrade() -> None:
    for name, columns, where in INDEXES:
        pg_where = sa.text(where) if where is not None else None
        op.create_index(name, "events", columns, postgresql_where=pg_where)


def downgrade() -> None:
    for name, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name="events")
