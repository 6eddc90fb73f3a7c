"""The gate's SQLite file: revocations, pass usage, anti-passback state and the decision journal.

One file per gate, WAL with synchronous=FULL so a journalled decision survives a power cut, and
ordered migrations recorded in `migrations`. Growth is bounded by `prune` (see docs/operations.md).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from edge.decide import PassUsage
from protocol.messages import ALERT_TYPES, DetailValue, EventType, GateEvent

_MIGRATIONS: list[str] = [
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
]


@dataclass(frozen=True, slots=True)
class Retention:
    """How much the gate keeps; the defaults hold weeks offline on a small SD card."""

    acked_days: float = 7.0
    max_unacked: int = 500_000
    revocation_grace_s: float = 86_400.0


class CacheError(Exception):
    """The gate cache cannot be opened or is from a newer version of menjin."""


class GateCache:
    """Repository over the gate's SQLite file; every write is one explicit transaction."""

    def __init__(self, path: Path, retention: Retention | None = None) -> None:
        self.path = path
        self.retention = retention or Retention()
        # One connection shared by the agent's threads; the lock keeps transactions whole.
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=10
            )
            self._conn = conn
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.Error as exc:
            raise CacheError(f"cannot open gate cache {path}: {exc}") from exc
        self._epoch = int(self._meta("epoch") or 0)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _one(self, sql: str, params: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
            return row

    def _all(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
        )
        row = self.db.execute("SELECT max(version) FROM migrations").fetchone()
        current = row[0] or 0
        if current > len(_MIGRATIONS):
            raise CacheError(f"cache schema {current} is newer than this menjin understands")
        for version, script in enumerate(_MIGRATIONS[current:], start=current + 1):
            statements = [s for s in script.split(";") if s.strip()]
            with self._tx() as conn:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO migrations VALUES (?, ?)", (version, time.time()))

    def schema_version(self) -> int:
        return int(self.db.execute("SELECT max(version) FROM migrations").fetchone()[0])

    def _meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def _set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # --- boot epoch -------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The current boot epoch (0 until the first boot or journal write)."""
        return self._epoch

    def begin_boot(self, now: float | None = None) -> int:
        """Start a new boot epoch: above every earlier one, and near Unix time for a new card."""
        stamp = int(time.time() if now is None else now)
        with self._tx() as conn:
            self._epoch = max(self._epoch + 1, stamp)
            self._set_meta(conn, "epoch", str(self._epoch))
        return self._epoch

    # --- CacheView for the decision engine ---------------------------------------------------

    def is_revoked(self, pass_id: str) -> bool:
        return self._one("SELECT 1 FROM revocations WHERE pass_id = ?", (pass_id,)) is not None

    def usage(self, pass_id: str) -> PassUsage | None:
        row = self._one(
            "SELECT uses, last_direction, last_at, last_gate FROM usage WHERE pass_id = ?",
            (pass_id,),
        )
        return None if row is None else PassUsage(row[0], row[1], row[2], row[3])

    # --- writes ------------------------------------------------------------------------------

    def revoke(
        self, pass_id: str, reason: str = "", until: float | None = None, source: str = "local"
    ) -> None:
        """Revoke a pass at this gate; `until` (the pass's expiry) lets prune forget it later."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO revocations VALUES (?, ?, ?, ?, ?) ON CONFLICT(pass_id) DO UPDATE"
                " SET reason = excluded.reason, until = excluded.until, source = excluded.source",
                (pass_id, reason, time.time(), until, source),
            )

    def unrevoke(self, pass_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM revocations WHERE pass_id = ?", (pass_id,))

    def revoked_count(self) -> int:
        return int(self._count("SELECT count(*) FROM revocations"))

    def journal_append(
        self,
        event_type: EventType,
        at: datetime,
        *,
        granted: bool | None = None,
        reason: str | None = None,
        pass_id: str | None = None,
        temperature_c: float | None = None,
        snapshot: str | None = None,
        details: dict[str, DetailValue] | None = None,
        use: tuple[str, str, float | None] | None = None,
    ) -> int:
        """Durably append one journal entry and return its seq.

        `use` = (gate, direction, pass valid_until) records a granted passage in the same
        transaction, so usage counts and anti-passback state never disagree with the journal.
        """
        details = details or {}
        flags = details.get("flags")
        alert = event_type in ALERT_TYPES or (isinstance(flags, list) and "fever" in flags)
        with self._tx() as conn:
            if self._epoch == 0:
                self._epoch = max(1, int(time.time()))
                self._set_meta(conn, "epoch", str(self._epoch))
            cur = conn.execute(
                "INSERT INTO journal (epoch, ts, at, type, granted, reason, pass_id,"
                " temperature_c, snapshot, details, priority) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    self._epoch,
                    at.timestamp(),
                    at.isoformat(),
                    event_type.value,
                    None if granted is None else int(granted),
                    reason,
                    pass_id,
                    temperature_c,
                    snapshot,
                    json.dumps(details, ensure_ascii=False, separators=(",", ":")),
                    1 if alert else 0,
                ),
            )
            if use is not None and pass_id is not None:
                gate, direction, valid_until = use
                conn.execute(
                    "INSERT INTO usage VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT(pass_id) DO UPDATE"
                    " SET uses = uses + 1, last_at = excluded.last_at,"
                    " last_direction = excluded.last_direction, last_gate = excluded.last_gate,"
                    " valid_until = excluded.valid_until",
                    (pass_id, at.timestamp(), direction, gate, valid_until),
                )
            seq = cur.lastrowid
        assert seq is not None
        return seq

    # --- reading the journal (for the MQTT bridge) ------------------------------------------

    def journal_unacked(self, after_seq: int = 0, limit: int = 100) -> list[GateEvent]:
        rows = self._all(
            "SELECT epoch, seq, at, type, granted, reason, pass_id, temperature_c, snapshot,"
            " details FROM journal WHERE acked = 0 AND seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [_row_event(r) for r in rows]

    def journal_entry(self, seq: int) -> GateEvent | None:
        row = self._one(
            "SELECT epoch, seq, at, type, granted, reason, pass_id, temperature_c, snapshot,"
            " details FROM journal WHERE seq = ?",
            (seq,),
        )
        return None if row is None else _row_event(row)

    def ack_through(self, seq: int) -> int:
        """Mark every entry up to seq as stored by central; returns how many changed."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE journal SET acked = 1 WHERE acked = 0 AND seq <= ?", (seq,))
        return cur.rowcount

    def backlog(self) -> int:
        return self._count("SELECT count(*) FROM journal WHERE acked = 0")

    def last_seq(self) -> int:
        found = self._one("SELECT seq FROM sqlite_sequence WHERE name = 'journal'")
        return 0 if found is None else int(found[0])

    def _count(self, sql: str) -> int:
        row = self._one(sql)
        return 0 if row is None else int(row[0])

    # --- bounded growth -----------------------------------------------------------------------

    def prune(
        self,
        now: float | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> dict[str, int]:
        """Forget what is no longer needed; returns counts per table.

        Acked journal entries go after `acked_days`; unacked ones only beyond `max_unacked`,
        oldest ordinary entries first and alerts last. Drops are counted in meta so they can be
        reported to central.
        """
        now = time.time() if now is None else now
        r = self.retention
        with self._tx() as conn:
            acked = conn.execute(
                "DELETE FROM journal WHERE acked = 1 AND ts < ?", (now - r.acked_days * 86_400,)
            ).rowcount
            usage = conn.execute(
                "DELETE FROM usage WHERE valid_until IS NOT NULL AND valid_until < ?",
                (now - r.revocation_grace_s,),
            ).rowcount
            revs = conn.execute(
                "DELETE FROM revocations WHERE until IS NOT NULL AND until < ?",
                (now - r.revocation_grace_s,),
            ).rowcount
            excess = (
                conn.execute("SELECT count(*) FROM journal WHERE acked = 0").fetchone()[0]
                - r.max_unacked
            )
            dropped = 0
            if excess > 0:
                dropped = conn.execute(
                    "DELETE FROM journal WHERE seq IN (SELECT seq FROM journal WHERE acked = 0"
                    " ORDER BY priority, seq LIMIT ?)",
                    (excess,),
                ).rowcount
                total = int(self._meta("dropped") or 0) + dropped
                self._set_meta(conn, "dropped", str(total))
        if dropped and on_dropped is not None:
            on_dropped(dropped)
        return {"journal_acked": acked, "usage": usage, "revocations": revs, "dropped": dropped}

    def dropped_total(self) -> int:
        return int(self._meta("dropped") or 0)


def _row_event(row: tuple[object, ...]) -> GateEvent:
    epoch, seq, at, etype, granted, reason, pass_id, temp, snapshot, details = row
    return GateEvent(
        epoch=int(str(epoch)),
        seq=int(str(seq)),
        at=datetime.fromisoformat(str(at)),
        type=EventType(str(etype)),
        granted=None if granted is None else bool(granted),
        reason=None if reason is None else str(reason),
        pass_id=None if pass_id is None else str(pass_id),
        temperature_c=None if temp is None else float(str(temp)),
        snapshot=None if snapshot is None else str(snapshot),
        details=json.loads(str(details)),
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
