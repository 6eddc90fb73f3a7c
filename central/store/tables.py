"""The central schema. Changing it means a new Alembic revision in migrations/versions."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# BigInteger ids autoincrement on PostgreSQL; on SQLite only INTEGER PRIMARY KEY does.
BigId = BigInteger().with_variant(Integer(), "sqlite")

gates = Table(
    "gates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("site", String(48), nullable=False),
    Column("gate", String(48), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("config", JSON, nullable=False, default=dict),
    Column("mqtt_username", String(120)),
    Column("online", Boolean, nullable=False, default=False),
    Column("last_seen", DateTime(timezone=True)),
    Column("offline_since", DateTime(timezone=True)),
    Column("status", JSON, nullable=False, default=dict),
    UniqueConstraint("site", "gate", name="uq_gates_site_gate"),
)

gate_epochs = Table(
    "gate_epochs",
    metadata,
    Column("site", String(48), primary_key=True),
    Column("gate", String(48), primary_key=True),
    Column("epoch", BigInteger, primary_key=True),
    Column("first_seq", BigInteger, nullable=False),
    Column("acked_seq", BigInteger, nullable=False),
    Column("max_seq", BigInteger, nullable=False),
    Column("gap_since", DateTime(timezone=True)),
    Column("replay_requests", Integer, nullable=False, default=0),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("site", String(48), nullable=False),
    Column("gate", String(48), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("at_offset_min", Integer, nullable=False, default=0),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("granted", Boolean),
    Column("reason", String(200)),
    Column("pass_id", String(16)),
    Column("temperature_c", Float),
    Column("clock_skew_s", Float),
    Column("snapshot", String(120)),
    Column("details", JSON, nullable=False, default=dict),
    UniqueConstraint("site", "gate", "epoch", "seq", name="uq_events_gate_epoch_seq"),
)
Index("ix_events_received", events.c.received_at)
Index("ix_events_pass", events.c.pass_id)
Index("ix_events_site_gate_at", events.c.site, events.c.gate, events.c.at)
# The event list filters on any of these columns and pages newest first (ORDER BY id DESC): an
# index (column, id) hands out the newest matching rows without reading the others. A common
# value is found as fast walking the primary key backwards, so on PostgreSQL the type, reason
# and denied indexes hold only the uncommon rows (small, cheap for ingest; it proves that
# `type = 'door_forced'` implies `type <> 'decision'`). SQLite cannot, so there they are whole.
# Denials are indexed per site: a site with few or none must not read all its events.
Index("ix_events_site_id", events.c.site, events.c.id)
Index("ix_events_gate_id", events.c.gate, events.c.id)
Index("ix_events_type_id", events.c.type, events.c.id, postgresql_where=events.c.type != "decision")
Index("ix_events_reason_id", events.c.reason, events.c.id, postgresql_where=events.c.reason != "ok")
Index(
    "ix_events_site_denied_id",
    events.c.site,
    events.c.granted,
    events.c.id,
    postgresql_where=~events.c.granted,
)
Index("ix_events_at", events.c.at)

lost_events = Table(
    "lost_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("site", String(48), nullable=False),
    Column("gate", String(48), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("cause", String(40), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("site", "gate", "epoch", "first_seq", name="uq_lost_range"),
)

revocations = Table(
    "revocations",
    metadata,
    Column("pass_id", String(16), primary_key=True),
    Column("reason", String(200), nullable=False, default=""),
    Column("revoked_at", DateTime(timezone=True), nullable=False),
    Column("revoked_by", String(120)),
    Column("until", BigInteger),
    Column("active", Boolean, nullable=False, default=True),
    Column("version", BigInteger, nullable=False),
)
Index("ix_revocations_version", revocations.c.version)

counters = Table(
    "counters",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("site", String(48), nullable=False),
    Column("gate", String(48), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False, default="open"),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("event_id", BigInteger, ForeignKey("events.id", ondelete="SET NULL")),
    Column("details", JSON, nullable=False, default=dict),
    Column("dedupe_key", String(200)),
    Column("acked_by", String(120)),
    Column("acked_at", DateTime(timezone=True)),
    Column("ack_note", Text),
    Column("resolved_by", String(120)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolve_note", Text),
    UniqueConstraint("dedupe_key", name="uq_alerts_dedupe"),
)
Index("ix_alerts_state", alerts.c.state, alerts.c.opened_at)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("site", String(48), nullable=False),
    Column("gate", String(48), nullable=False),
    Column("name", String(120), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("jpeg", LargeBinary, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("site", "gate", "name", name="uq_snapshots_name"),
)

# --- people, passes and the audit trail (revision 0002) ---------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(80), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(80), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("expires_at", DateTime(timezone=True)),  # revision 0003; null: never
)

# Login back-off (revision 0003, replacing login_failures): one row per user name and one per
# client address, so its size is bounded by the names and addresses seen in the reset window.
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("scope", String(8), primary_key=True),  # "user" or "addr"
    Column("key", String(80), primary_key=True),  # truncated user name or address
    Column("failures", Integer, nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("blocked_until", DateTime(timezone=True)),
)
Index("ix_login_throttle_last_at", login_throttle.c.last_at)

# The people passes are issued to (revision 0003): `menjin central person forget ID` removes one.
people = Table(
    "people",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("site", String(48), nullable=False),
    Column("holder", String(120), nullable=False),
    Column("unit", String(80)),
    Column("phone", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_people_site_holder", people.c.site, people.c.holder)

passes = Table(
    "passes",
    metadata,
    Column("pass_id", String(16), primary_key=True),
    Column("site", String(48), nullable=False),
    Column("holder", String(120), nullable=False),
    Column("display_name", String(60), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("unit", String(80)),
    Column("phone", String(32)),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=False),
    Column("gates", JSON, nullable=False, default=list),
    Column("hours", String(16)),
    Column("days", String(40)),
    Column("max_uses", Integer, nullable=False, default=0),
    Column("key_id", String(8), nullable=False),
    Column("text", Text, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("issued_by", String(80), nullable=False),
    Column("person_id", Integer, ForeignKey("people.id", name="fk_passes_person")),  # 0003
    # The revocation list version at which the pass was bound to a phone (revision 0010): gates
    # get the static texts of their site's device-bound passes newer than their own version.
    Column("bound_version", BigInteger),
)
Index("ix_passes_site_holder", passes.c.site, passes.c.holder)
Index("ix_passes_site_bound_version", passes.c.site, passes.c.bound_version)
Index("ix_passes_person", passes.c.person_id)

audit = Table(
    "audit",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("action", String(60), nullable=False),
    Column("target", String(200)),
    Column("remote", String(64)),
    Column("details", JSON, nullable=False, default=dict),
)
Index("ix_audit_at", audit.c.at)

# --- fleet control: signed gate policy, signing keys, lockdowns (revision 0006) ---------------

site_policies = Table(
    "site_policies",
    metadata,
    Column("site", String(48), primary_key=True),
    Column("fields", JSON, nullable=False, default=dict),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(80), nullable=False),
)

gate_policies = Table(
    "gate_policies",
    metadata,
    Column("gate_id", Integer, ForeignKey("gates.id", ondelete="CASCADE"), primary_key=True),
    Column("fields", JSON, nullable=False, default=dict),
    Column("version", BigInteger, nullable=False, default=0),
    Column("document", Text),
    Column("signed_at", DateTime(timezone=True)),
    Column("updated_by", String(80)),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("key_id", String(8), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("key_dir", String(500)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activated_at", DateTime(timezone=True)),
    Column("retired_at", DateTime(timezone=True)),
)
Index("ix_signing_keys_purpose_state", signing_keys.c.purpose, signing_keys.c.state)

lockdowns = Table(
    "lockdowns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("site", String(48), nullable=False),
    Column("gates", JSON),
    Column("mode", String(16)),
    Column("reason", String(200), nullable=False, default=""),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("started_by", String(80), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("ended_by", String(80)),
)
Index("ix_lockdowns_site_active", lockdowns.c.site, lockdowns.c.ended_at)

# --- phone enrolment links (revision 0007) ----------------------------------------------------

enrolments = Table(
    "enrolments",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("pass_id", String(16), ForeignKey("passes.pass_id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(80), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("device_alg", String(16)),
    Column("device_key", String(66)),
)
Index("ix_enrolments_pass", enrolments.c.pass_id)

# Central replicas alive by heartbeat: sites are partitioned over them where the broker has no
# shared subscriptions (central/ingest/partitions.py).
central_replicas = Table(
    "central_replicas",
    metadata,
    Column("replica", String(48), primary_key=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)
