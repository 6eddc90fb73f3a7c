"""The gate's SQLite file: revocations, pass usage, anti-passback state and the decision journal.

One file per gate, WAL with synchronous=FULL so a journalled decision survives a power cut, and
ordered migrations recorded in `migrations` (cache_schema.py). Growth is bounded by `prune` (see
docs/operations.md). The pass-state tables' SQL is in pass_state.py; a decision's question about
a pass is answered from their in-memory mirror (pass_mirror.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from edge import journal_table, pass_state
from edge.cache_schema import MIGRATIONS, SCHEMA_VERSION
from edge.decide import PassRecord, PassUsage
from edge.journal_table import parse_seq_ranges, row_event, seq_ranges, utc_now
from edge.pass_mirror import Change, MirrorKeeper
from protocol.fsmodes import private_dir, private_sqlite
from protocol.messages import DetailValue, EventType, GateEvent

# Re-exported: callers and tests import these from the store's module.
__all__ = ["SCHEMA_VERSION", "CacheError", "GateCache", "Retention", "parse_seq_ranges",
           "seq_ranges", "utc_now"]  # fmt: skip

PAGE_CACHE_KIB = 32 * 1024


@dataclass(frozen=True, slots=True)
class Retention:
    """How much the gate keeps; the defaults hold weeks offline on a small SD card."""

    acked_days: float = 7.0
    max_unacked: int = 500_000
    revocation_grace_s: float = 86_400.0
    # Far beyond a live code's 30 s life, so a clock stepped back by NTP cannot revive one.
    live_code_memory_s: float = 86_400.0
    max_live_codes: int = 200_000
    # The pass-state rows the decision's mirror may hold (100k revocations, the replay memory's
    # cap, usage and verified signatures of a large compound); beyond it decisions read SQLite.
    max_mirrored_rows: int = 500_000


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
            # codes: about 20 MB) in SQLite's own cache, so a decision's lookup while the mirror
            # cannot answer reads no page through a system call (the 2 MB default made that a
            # third of the lookup); filled only as pages are read, so idle with the mirror.
            # Not mmap: a failing SD card would then end the agent with SIGBUS, not an error.
            self.db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
            self._changes: list[Change] = []  # what the open transaction changed in pass state
            self._mirror = MirrorKeeper(conn, path, self._lock, self.retention.max_mirrored_rows)
            # No mirror yet: the first decision's question begins its load (a `gate revoke`
            # never asks one), and decisions read SQLite until it is in.
            self._migrate()
        except sqlite3.Error as exc:
            raise CacheError(f"cannot open gate cache {path}: {exc}") from exc
        self._epoch = int(self._meta("epoch") or 0)

    def close(self) -> None:
        self._mirror.close()
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; its pass-state changes reach the mirror once it committed."""
        with self._lock:
            self._changes = []
            self._mirror.check_connection()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._mirror.rolled_back()
                raise
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                self._mirror.invalidate()  # committed or not, the file is the one to ask
                if self._conn.in_transaction:  # a failed COMMIT (BUSY, I/O) leaves it open,
                    self._conn.execute("ROLLBACK")  # and every later BEGIN would fail
                raise
            self._mirror.committed(self._changes)

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
            if current > SCHEMA_VERSION:
                raise CacheError(f"cache schema {current} is newer than this menjin understands")
            for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
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
        """From memory while the mirror agrees with the file (see pass_mirror.py), else SQLite."""
        with self._lock:
            mirror = self._mirror.current()
            if mirror is not None:
                return mirror.pass_record(pass_id, live_slot, signature_digest)
            return pass_state.read_record(self._conn, pass_id, live_slot, signature_digest)

    @property
    def mirrored(self) -> bool:
        """Whether a decision's question about a pass is answered from memory just now."""
        with self._lock:
            return self._mirror.current() is not None

    def forget_signatures(self, keep: Collection[bytes]) -> int:
        """Forget the verified signatures of every issuer key but these (the trusted ones).

        Asked at start and on every policy change: it reads first and takes the write lock only
        when some key's rows must go.
        """
        with self._lock:
            held = pass_state.signature_keys(self._conn)
        gone = [key_id for key_id in held if key_id not in keep]
        if not gone:
            return 0
        with self._tx() as conn:
            changes = pass_state.forget_signatures_of(conn, gone)
            self._changes += changes
        return sum(len(items) for _, items in changes)

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
            self._changes += pass_state.revoke(conn, pass_id, reason, time.time(), until, source)

    def unrevoke(self, pass_id: str) -> None:
        with self._tx() as conn:
            self._changes += pass_state.unrevoke(conn, [pass_id])

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
        entry = journal_table.Entry(event_type, at, granted, reason, pass_id, temperature_c,
                                    snapshot, details or {})  # fmt: skip
        with self._tx() as conn:
            if self._epoch == 0:
                self._new_epoch(conn, max(1, int(time.time())))
            seq = journal_table.insert(conn, self._epoch, entry)
            ts = at.timestamp()
            if use is not None and pass_id is not None:
                self._changes += pass_state.record_use(conn, pass_id, ts, use)
            if live_slot is not None and pass_id is not None:
                self._changes += pass_state.remember_live_code(conn, pass_id, live_slot, ts)
            if verified is not None:
                self._changes += pass_state.remember_signatures(conn, [verified], ts)
        return seq

    def remember_signatures(
        self,
        verified: Sequence[tuple[bytes, bytes, float | None]],
        trusted: Callable[[], Collection[bytes]],
    ) -> int:
        """Issuer signatures verified ahead of any decision (edge/pass_hints.py), as a
        decision's are (journal_append's `verified`), in one transaction; how many were kept.

        `trusted` (the key ids trusted now) is asked inside the transaction, under the store's
        lock: a policy that dropped a key meanwhile has swapped its context before its
        forget_signatures, so no row of that key can land after the forgetting."""
        if not verified:
            return 0
        with self._tx() as conn:
            keys = trusted()
            verified = [v for v in verified if v[1] in keys]
            if verified:
                self._changes += pass_state.remember_signatures(conn, verified, time.time())
        return len(verified)

    # --- reading the journal (for the MQTT bridge) ------------------------------------------

    def journal_unacked(self, after_seq: int = 0, limit: int = 100) -> list[GateEvent]:
        rows = self._all(
            "SELECT epoch, seq, at, type, granted, reason, pass_id, temperature_c, snapshot,"
            " details FROM journal WHERE acked = 0 AND seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [row_event(r) for r in rows]

    def journal_entry(self, seq: int) -> GateEvent | None:
        row = self._one(
            "SELECT epoch, seq, at, type, granted, reason, pass_id, temperature_c, snapshot,"
            " details FROM journal WHERE seq = ?",
            (seq,),
        )
        return None if row is None else row_event(row)

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
            self._changes += pass_state.apply_revocations(conn, snapshot, revoked, unrevoked, now)
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
            acked, victims = journal_table.prune(conn, now - r.acked_days * 86_400, r.max_unacked)
            passes, changes = pass_state.prune_passes(
                conn, now - r.revocation_grace_s, now - r.live_code_memory_s, r.max_live_codes
            )
            self._changes += changes
            dropped, ranges = len(victims), seq_ranges(victims)
            if dropped:
                total = int(self._meta("dropped") or 0) + dropped
                self._set_meta(conn, "dropped", str(total))
            conn.execute("DELETE FROM commands_seen WHERE at < ?", (now - 30 * 86_400,))
        if dropped and on_dropped is not None:
            on_dropped(dropped, ranges)
        return {"journal_acked": acked, **passes, "dropped": dropped}

    def dropped_total(self) -> int:
        return int(self._meta("dropped") or 0)
