"""The gate's SQLite file: revocations, pass usage, anti-passback state and the decision journal.

One file per gate, WAL with synchronous=FULL so a journalled decision survives a power cut, and
ordered migrations recorded in `migrations`. Growth is bounded by `prune` (see docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from pydantic import ValidationError

from edge.decide import PassRecord, PassUsage
from protocol.fsmodes import private_dir, private_sqlite
from protocol.live import Flag, has_flag
from protocol.messages import ALERT_TYPES, DetailValue, EventType, GateEvent

log = logging.getLogger(__name__)

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

SCHEMA_VERSION = len(_MIGRATIONS)
PAGE_CACHE_KIB = 32 * 1024

# What a decision needs to know of one pass, in one statement (a NULL matches no row).
_RECORD_QUERY = (
    "SELECT EXISTS (SELECT 1 FROM revocations WHERE pass_id = ?1),"
    " EXISTS (SELECT 1 FROM live_codes WHERE pass_id = ?1 AND slot = ?2),"
    " EXISTS (SELECT 1 FROM verified_signatures WHERE digest = ?3),"
    " u.uses, u.last_direction, u.last_at, u.last_gate"
    " FROM (SELECT 1) LEFT JOIN usage AS u ON u.pass_id = ?1"
)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much the gate keeps; the defaults hold weeks offline on a small SD card."""

    acked_days: float = 7.0
    max_unacked: int = 500_000
    revocation_grace_s: float = 86_400.0
    # Far beyond a live code's 30 s life, so a clock stepped back by NTP cannot revive one.
    live_code_memory_s: float = 86_400.0
    max_live_codes: int = 200_000


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
            # The journal holds who passed when: 0600, with its -wal and -shm (see fsmodes).
            private_sqlite(private_dir(path.parent) / path.name)
            conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=10
            )
            self._conn = conn
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            # Room for the whole file of a large compound (100k revocations, usage rows and live
            # codes: about 20 MB) in SQLite's own cache, so a decision's lookup reads no page
            # through a system call; the 2 MB default made that a third of the lookup. Not mmap:
            # a failing SD card would then end the agent with SIGBUS rather than an error.
            self.db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
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
        # The version is read inside the write transaction: the agent and a `gate present` in
        # another process may open a new file at the same moment, and only one may migrate it.
        with self._tx() as conn:
            current = conn.execute("SELECT max(version) FROM migrations").fetchone()[0] or 0
            if current > len(_MIGRATIONS):
                raise CacheError(f"cache schema {current} is newer than this menjin understands")
            for version, script in enumerate(_MIGRATIONS[current:], start=current + 1):
                for statement in (s for s in script.split(";") if s.strip()):
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
            self._new_epoch(conn, max(self._epoch + 1, stamp))
        return self._epoch

    def _new_epoch(self, conn: sqlite3.Connection, epoch: int) -> None:
        self._epoch = epoch
        self._set_meta(conn, "epoch", str(epoch))
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
        first = (row[0] if row else 0) + 1
        conn.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?)", (epoch, first, time.time()))

    def epoch_first_seq(self, epoch: int) -> int | None:
        row = self._one("SELECT first_seq FROM epochs WHERE epoch = ?", (epoch,))
        return None if row is None else int(row[0])

    # --- CacheView for the decision engine ---------------------------------------------------

    def pass_record(
        self, pass_id: str, live_slot: int | None, signature_digest: bytes | None
    ) -> PassRecord:
        row = self._one(_RECORD_QUERY, (pass_id, live_slot, signature_digest))
        assert row is not None  # the outer SELECT always yields its one row
        revoked, live_used, verified, uses, last_direction, last_at, last_gate = row
        usage = None if uses is None else PassUsage(uses, last_direction, last_at, last_gate)
        return PassRecord(bool(revoked), usage, bool(live_used), bool(verified))

    def forget_signatures(self, keep: Collection[bytes]) -> int:
        """Forget the verified signatures of every issuer key but these (the trusted ones).

        Asked at start and on every policy change: it reads first and takes the write lock only
        when some key's rows must go.
        """
        held = [row[0] for row in self._all("SELECT DISTINCT key_id FROM verified_signatures")]
        gone = [(key_id,) for key_id in held if key_id not in keep]
        if not gone:
            return 0
        with self._tx() as conn:
            cur = conn.executemany("DELETE FROM verified_signatures WHERE key_id = ?", gone)
        return int(cur.rowcount)

    def is_revoked(self, pass_id: str) -> bool:
        return self._one("SELECT 1 FROM revocations WHERE pass_id = ?", (pass_id,)) is not None

    def usage(self, pass_id: str) -> PassUsage | None:
        row = self._one(
            "SELECT uses, last_direction, last_at, last_gate FROM usage WHERE pass_id = ?",
            (pass_id,),
        )
        return None if row is None else PassUsage(row[0], row[1], row[2], row[3])

    def live_code_used(self, pass_id: str, slot: int) -> bool:
        found = self._one(
            "SELECT 1 FROM live_codes WHERE pass_id = ? AND slot = ?", (pass_id, slot)
        )
        return found is not None

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
        live_slot: int | None = None,
        verified: tuple[bytes, bytes, float | None] | None = None,
    ) -> int:
        """Durably append one journal entry and return its seq.

        `use` = (gate, direction, pass valid_until) records a granted passage in the same
        transaction, so usage counts and anti-passback state never disagree with the journal;
        `live_slot` likewise remembers the granted live code against replay, and `verified` =
        (signature digest, key id, pass valid_until) the issuer signature the decision checked.
        """
        details = details or {}
        alert = event_type in ALERT_TYPES or has_flag(details, Flag.FEVER)
        with self._tx() as conn:
            if self._epoch == 0:
                self._new_epoch(conn, max(1, int(time.time())))
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
            if live_slot is not None and pass_id is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO live_codes VALUES (?, ?, ?)",
                    (pass_id, live_slot, at.timestamp()),
                )
            if verified is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO verified_signatures VALUES (?, ?, ?, ?)",
                    (*verified, at.timestamp()),
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

    def ack_through(self, seq: int, epoch: int | None = None) -> int:
        """Mark entries up to seq (of one epoch, or of all) as stored by central."""
        with self._tx() as conn:
            if epoch is None:
                cur = conn.execute(
                    "UPDATE journal SET acked = 1 WHERE acked = 0 AND seq <= ?", (seq,)
                )
            else:
                cur = conn.execute(
                    "UPDATE journal SET acked = 1 WHERE acked = 0 AND epoch = ? AND seq <= ?",
                    (epoch, seq),
                )
        return cur.rowcount

    # --- sync and commands ------------------------------------------------------------------

    @property
    def cache_version(self) -> int:
        return int(self._meta("cache_version") or 0)

    def last_sync(self) -> float | None:
        value = self._meta("last_sync")
        return None if value is None else float(value)

    def apply_delta(
        self,
        version: int,
        snapshot: bool,
        revoked: list[tuple[str, str, float | None]],
        unrevoked: list[str],
    ) -> None:
        """Apply central's revocation delta (or snapshot) and its version in one transaction."""
        now = time.time()
        with self._tx() as conn:
            if snapshot:
                conn.execute("DELETE FROM revocations WHERE source = 'central'")
            conn.executemany(
                "INSERT INTO revocations VALUES (?, ?, ?, ?, 'central') ON CONFLICT(pass_id)"
                " DO UPDATE SET reason = excluded.reason, until = excluded.until,"
                " source = 'central'",
                [(pid, reason, now, until) for pid, reason, until in revoked],
            )
            conn.executemany("DELETE FROM revocations WHERE pass_id = ?", [(p,) for p in unrevoked])
            self._set_meta(conn, "cache_version", str(version))
            self._set_meta(conn, "last_sync", str(now))

    def policy_record(self, name: str) -> str | None:
        """A stored policy record: `signed` (central's document) or `local` (guard overrides)."""
        return self._meta(f"policy_{name}")

    def set_policy_record(self, name: str, value: str) -> None:
        with self._tx() as conn:
            self._set_meta(conn, f"policy_{name}", value)

    def command_result(self, command_id: str) -> str | None:
        row = self._one("SELECT result FROM commands_seen WHERE id = ?", (command_id,))
        return None if row is None else str(row[0])

    def record_command(self, command_id: str, result: str) -> bool:
        """Record a command id; False when it was already there (so it must not run again)."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO commands_seen VALUES (?, ?, ?)",
                (command_id, time.time(), result),
            )
        return cur.rowcount == 1

    def unacked_through(self, seq: int) -> int:
        """How many unacked entries have a seq at or below seq (those in flight)."""
        row = self._one("SELECT count(*) FROM journal WHERE acked = 0 AND seq <= ?", (seq,))
        return 0 if row is None else int(row[0])

    def next_snapshot_to_upload(self) -> tuple[int, int, str] | None:
        row = self._one(
            "SELECT epoch, seq, snapshot FROM journal WHERE snapshot IS NOT NULL"
            " AND snapshot_sent = 0 AND acked = 1 ORDER BY seq LIMIT 1"
        )
        return None if row is None else (int(row[0]), int(row[1]), str(row[2]))

    def mark_snapshot_sent(self, seq: int) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE journal SET snapshot_sent = 1 WHERE seq = ?", (seq,))

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
        on_dropped: Callable[[int, list[str]], None] | None = None,
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
            conn.execute(
                "DELETE FROM verified_signatures WHERE valid_until < ?",
                (now - r.revocation_grace_s,),
            )
            excess = (
                conn.execute("SELECT count(*) FROM journal WHERE acked = 0").fetchone()[0]
                - r.max_unacked
            )
            dropped = 0
            ranges: list[str] = []
            if excess > 0:
                victims = conn.execute(
                    "SELECT epoch, seq FROM journal WHERE acked = 0 ORDER BY priority, seq LIMIT ?",
                    (excess,),
                ).fetchall()
                conn.executemany("DELETE FROM journal WHERE seq = ?", [(v[1],) for v in victims])
                dropped = len(victims)
                ranges = seq_ranges(victims)
                total = int(self._meta("dropped") or 0) + dropped
                self._set_meta(conn, "dropped", str(total))
            conn.execute("DELETE FROM commands_seen WHERE at < ?", (now - 30 * 86_400,))
            live = self._prune_live_codes(conn, now)
        if dropped and on_dropped is not None:
            on_dropped(dropped, ranges)
        counts = {"journal_acked": acked, "usage": usage, "revocations": revs, "dropped": dropped}
        return {**counts, "live_codes": live}

    def _prune_live_codes(self, conn: sqlite3.Connection, now: float) -> int:
        r = self.retention
        old = conn.execute(
            "DELETE FROM live_codes WHERE at < ?", (now - r.live_code_memory_s,)
        ).rowcount
        # A flood of grants within a day still leaves a bounded table: the oldest go first.
        over = conn.execute(
            "DELETE FROM live_codes WHERE (pass_id, slot) IN (SELECT pass_id, slot"
            " FROM live_codes ORDER BY at DESC LIMIT -1 OFFSET ?)",
            (r.max_live_codes,),
        ).rowcount
        return int(old + over)

    def dropped_total(self) -> int:
        return int(self._meta("dropped") or 0)


def seq_ranges(rows: list[tuple[Any, ...]]) -> list[str]:
    """(epoch, seq) pairs -> ["epoch:first-last", ...] runs, for reporting dropped entries."""
    out: list[str] = []
    run: list[int] = []
    for epoch, seq in sorted((int(e), int(s)) for e, s in rows):
        if run and run[0] == epoch and run[2] + 1 == seq:
            run[2] = seq
            continue
        if run:
            out.append(f"{run[0]}:{run[1]}-{run[2]}")
        run = [epoch, seq, seq]
    if run:
        out.append(f"{run[0]}:{run[1]}-{run[2]}")
    return out


def parse_seq_ranges(ranges: list[str]) -> list[tuple[int, int, int]]:
    """Inverse of seq_ranges: ["epoch:first-last"] -> [(epoch, first, last)]; skips bad items."""
    out = []
    for item in ranges:
        try:
            epoch, span = item.split(":")
            first, last = span.split("-")
            out.append((int(epoch), int(first), int(last)))
        except ValueError:
            continue
    return out


def _row_event(row: tuple[object, ...]) -> GateEvent:
    epoch, seq, at, etype, granted, reason, pass_id, temp, snapshot, details = row
    fields: dict[str, Any] = {
        "epoch": int(str(epoch)),
        "seq": int(str(seq)),
        "at": datetime.fromisoformat(str(at)),
        "type": EventType(str(etype)),
        "granted": None if granted is None else bool(granted),
        "reason": None if reason is None else str(reason),
        "pass_id": None if pass_id is None else str(pass_id),
        "temperature_c": None if temp is None else float(str(temp)),
        "snapshot": None if snapshot is None else str(snapshot),
        "details": json.loads(str(details)),
    }
    try:
        return GateEvent(**fields)
    except ValidationError as exc:
        return _sendable(fields, exc)


def _sendable(fields: dict[str, Any], exc: ValidationError) -> GateEvent:
    """An entry outside the wire bounds (a clock in 2101, a sensor reading 999 °C) still goes.

    Were it refused here, the sender would retry it forever and the journal behind it would
    wedge; so the offending fields are cleared, named in `details.invalid_fields`, and the
    entry keeps its seq, so central stores it and no hole opens.
    """
    bad = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]} - {"epoch", "seq"})
    log.warning("journal seq %s is outside the wire bounds in %s", fields["seq"], bad)
    clean = dict(fields)
    extra: dict[str, DetailValue] = {"invalid_fields": bad}
    for name in bad:
        if name == "at":
            extra["gate_at"] = str(fields["at"])[:64]
            clean["at"] = utc_now()
        elif name == "details":
            clean["details"] = {}
        elif name != "type":
            clean[name] = None
    clean["details"] = {**clean["details"], **extra}
    try:
        return GateEvent(**clean)
    except ValidationError:  # what is left is still refused: send the bare facts
        return GateEvent(epoch=clean["epoch"], seq=clean["seq"], at=utc_now(),
                         type=clean["type"], details=extra)  # fmt: skip


def utc_now() -> datetime:
    return datetime.now(UTC)
