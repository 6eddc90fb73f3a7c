"""The gate store's tables: ordered migrations, each applied once and recorded in `migrations`."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE revocations (
        pass_id TEXT PRIMARY KEY, reason TEXT NOT NULL DEFAULT '', revoked_at REAL NOT NULL,
        until REAL, source TEXT NOT NULL);
    CREATE TABLE usage (
        pass_id TEXT PRIMARY KEY, uses INTEGER NOT NULL, last_at REAL, last_direction TEXT,
        last_gate TEXT, valid_until REAL);
    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, epoch INTEGER NOT NULL, ts REAL NOT NULL,
        at TEXT NOT NULL, type TEXT NOT NULL, granted INTEGER, reason TEXT, pass_id TEXT,
        temperature_c REAL, snapshot TEXT, details TEXT NOT NULL DEFAULT '{}',
        priority INTEGER NOT NULL DEFAULT 0, acked INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX journal_unacked ON journal (acked, seq);
    CREATE INDEX journal_priority ON journal (acked, priority, seq);
    """,
    """
    CREATE TABLE epochs (epoch INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL, started_at REAL);
    INSERT INTO epochs SELECT epoch, min(seq), min(ts) FROM journal GROUP BY epoch;
    CREATE TABLE commands_seen (id TEXT PRIMARY KEY, at REAL NOT NULL, result TEXT NOT NULL);
    ALTER TABLE journal ADD COLUMN snapshot_sent INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX journal_snapshots ON journal (snapshot_sent, acked) WHERE snapshot IS NOT NULL;
    """,
    # The live codes granted here, so a copy of one is refused at this gate at once.
    """
    CREATE TABLE live_codes (
        pass_id TEXT NOT NULL, slot INTEGER NOT NULL, at REAL NOT NULL,
        PRIMARY KEY (pass_id, slot)) WITHOUT ROWID;
    CREATE INDEX live_codes_at ON live_codes (at);
    """,
    # Issuer signatures verified here (edge/sigmemo.py), so a restart need not check them again.
    """
    CREATE TABLE verified_signatures (
        digest BLOB PRIMARY KEY, key_id BLOB NOT NULL, valid_until REAL, at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
