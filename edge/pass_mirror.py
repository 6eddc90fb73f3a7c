"""An in-memory mirror of the gate store's pass state, so a decision reads no SQLite.

The store stays the truth. The mirror is loaded from it at start; each of the store's own
transactions applies its changes (edge/pass_state.py) once it has committed; and any other
writer is noticed before the mirror is believed: another connection's commit (`gate revoke` or
`gate present` in another process) by `PRAGMA data_version`, a write on the store's own
connection outside its methods by the connection's change count. A mirror so found stale is
dropped, decisions read SQLite, and a new one is loaded on a connection of its own in the
background, with the store's own writes meanwhile applied on top of it before it is used.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum, auto
from pathlib import Path
from typing import Any

from edge.decide import PassRecord, PassUsage

log = logging.getLogger(__name__)

RETRY_S = 60.0  # after a load that failed or found too much, before the next try
_LOWER_HEX = "0123456789abcdef"


class Op(Enum):
    REVOKE = auto()
    UNREVOKE = auto()
    USE = auto()  # items: (pass_id, uses, last_direction, last_at, last_gate) as stored
    FORGET_USE = auto()
    LIVE = auto()  # items: (pass_id, slot)
    FORGET_LIVE = auto()
    VERIFY = auto()  # items: signature digests
    FORGET_VERIFIED = auto()


# One write's effect on a table, in the order the transaction made them.
Change = tuple[Op, list[Any]]


# A usage row as the mirror keeps it: (uses, last_direction, last_at, last_gate).
UsageRow = tuple[int, str | None, float | None, str | None]


def pass_key(pass_id: str) -> int | str:
    """A pass id as the mirror files it: a canonical one (16 lowercase hex digits, as every
    pass's is) as its integer, which takes half the memory; any other as it is."""
    # strip() leaves nothing only of a text made of these digits alone: no sign, space, "0x"
    # or "_" that int() would take, and no upper case, so the integer names one text.
    if len(pass_id) == 16 and not pass_id.strip(_LOWER_HEX):
        return int(pass_id, 16)
    return pass_id


def live_key(pass_id: str, slot: int, key: int | str | None = None) -> object:
    """One live slot of a pass (whose pass_key may be given): the pass's integer and the slot
    in one int where they fit."""
    key = pass_key(pass_id) if key is None else key
    if isinstance(key, int) and 0 <= slot < 1 << 32:
        return key << 32 | slot
    return (pass_id, slot)


def _usage_row(
    uses: int, direction: str | None, last_at: float | None, gate: str | None
) -> UsageRow:
    # A gate and a direction are a handful of strings: one copy for every row.
    intern = sys.intern
    return (uses, None if direction is None else intern(direction), last_at,
            None if gate is None else intern(gate))  # fmt: skip


@dataclass(slots=True)
class PassMirror:
    """The four pass-state tables' keys (and usage rows) in memory, compactly; a CacheView."""

    revoked: set[int | str] = field(default_factory=set)
    uses: dict[int | str, UsageRow] = field(default_factory=dict)
    live_used: set[object] = field(default_factory=set)
    verified: set[bytes] = field(default_factory=set)

    def pass_record(
        self, pass_id: str, live_slot: int | None, signature_digest: bytes | None
    ) -> PassRecord:
        key = pass_key(pass_id)
        row = self.uses.get(key)
        return PassRecord(
            key in self.revoked,
            None if row is None else PassUsage(*row),
            live_slot is not None and live_key(pass_id, live_slot, key) in self.live_used,
            signature_digest is not None and signature_digest in self.verified,
        )

    def rows(self) -> int:
        return len(self.revoked) + len(self.uses) + len(self.live_used) + len(self.verified)

    def apply(self, changes: Iterable[tuple[Op, Iterable[Any]]]) -> None:
        for op, items in changes:
            if op is Op.REVOKE:
                self.revoked.update(map(pass_key, items))
            elif op is Op.UNREVOKE:
                self.revoked.difference_update(map(pass_key, items))
            elif op is Op.USE:
                self.uses.update((pass_key(row[0]), _usage_row(*row[1:])) for row in items)
            elif op is Op.FORGET_USE:
                for pass_id in items:
                    self.uses.pop(pass_key(pass_id), None)
            elif op is Op.LIVE:
                self.live_used.update(live_key(p, s) for p, s in items)
            elif op is Op.FORGET_LIVE:
                self.live_used.difference_update(live_key(p, s) for p, s in items)
            elif op is Op.VERIFY:
                self.verified.update(items)
            else:
                self.verified.difference_update(items)


class MirrorTooLargeError(Exception):
    """The store holds more pass state than the mirror may keep in memory."""


def load_mirror(conn: sqlite3.Connection, max_rows: int) -> tuple[PassMirror, int]:
    """The mirror and the `data_version` it is as of, read in one read transaction."""
    conn.execute("BEGIN")
    try:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM revocations) + (SELECT count(*) FROM usage)"
            " + (SELECT count(*) FROM live_codes) + (SELECT count(*) FROM verified_signatures)"
        ).fetchone()[0]
        if counts > max_rows:
            raise MirrorTooLargeError(f"{counts} pass-state rows, more than {max_rows}")
        version = data_version(conn)
        mirror = PassMirror()
        # Row by row, not a list of each table first: what a list took would stay in the RSS.
        mirror.apply([
            (Op.REVOKE, (r[0] for r in conn.execute("SELECT pass_id FROM revocations"))),
            (Op.USE, conn.execute(
                "SELECT pass_id, uses, last_direction, last_at, last_gate FROM usage")),
            (Op.LIVE, conn.execute("SELECT pass_id, slot FROM live_codes")),
            (Op.VERIFY, (r[0] for r in conn.execute("SELECT digest FROM verified_signatures"))),
        ])  # fmt: skip
    finally:
        conn.execute("COMMIT")
    return mirror, version


def data_version(conn: sqlite3.Connection | sqlite3.Cursor) -> int:
    """Changes whenever another connection (of any process) has committed to the file."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


class MirrorKeeper:
    """Keeps a PassMirror in step with one connection to the store; every method but `close`
    is called holding the store's lock."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, lock: threading.RLock, max_rows: int
    ) -> None:
        self._conn = conn
        # Asked before every decision: a cursor of its own saves making one each time (about
        # 2 of the question's 9 us between two verifies). fetchone() of its one row ends the
        # statement, so the cursor holds no read transaction open between questions.
        self._versions = conn.cursor()
        self._lock = lock
        self._path = path
        self.max_rows = max_rows
        self._mirror: PassMirror | None = None
        self._version = 0  # the connection's data_version the mirror is as of
        self._generation = 0  # counts invalidations, so a load begun before one is not used
        self._known_changes = conn.total_changes
        self._pending: list[Change] | None = None  # own commits while a load runs
        self._loader: threading.Thread | None = None
        self._retry_at = 0.0

    def current(self) -> PassMirror | None:
        """The mirror if it is known to agree with the file; else None and a load begins."""
        self.check_connection()
        if self._mirror is not None and data_version(self._versions) != self._version:
            self.invalidate()  # another connection committed
        if self._mirror is None and self._loader is None and time.monotonic() >= self._retry_at:
            self._start_load()
        return self._mirror

    def check_connection(self) -> None:
        """Drop the mirror if someone wrote on this connection outside the store's methods
        (asked before each own transaction too, whose commit would otherwise hide it)."""
        if self._conn.total_changes != self._known_changes:
            self.invalidate()

    def invalidate(self) -> None:
        self._mirror = None
        self._generation += 1
        self._known_changes = self._conn.total_changes

    def committed(self, changes: list[Change]) -> None:
        """The store's own transaction committed these changes."""
        self._known_changes = self._conn.total_changes
        if self._pending is not None:
            self._pending.extend(changes)
        if self._mirror is None:
            return
        try:
            self._mirror.apply(changes)
        except Exception:  # the write is committed: drop the copy, do not fail the caller
            log.exception("pass mirror out of step; decisions read SQLite")
            self.invalidate()
            self._retry_at = time.monotonic() + RETRY_S
            return
        if self._mirror.rows() > self.max_rows:
            log.warning("decisions read SQLite, not memory: more than %d pass-state rows",
                        self.max_rows)  # fmt: skip
            self.invalidate()
            self._retry_at = time.monotonic() + RETRY_S

    def rolled_back(self) -> None:
        self._known_changes = self._conn.total_changes

    def close(self) -> None:
        loader = self._loader
        if loader is not None:
            loader.join(timeout=30)

    def _start_load(self) -> None:
        generation, version = self._generation, data_version(self._conn)
        self._pending = []
        self._loader = threading.Thread(
            target=self._load_apart, args=(generation, version), name="mirror", daemon=True
        )
        self._loader.start()

    def _load_apart(self, generation: int, version: int) -> None:
        """Read the file on a connection of its own, so decisions meanwhile read SQLite."""
        mirror: PassMirror | None = None
        try:
            mirror = self._read_apart()
        except (sqlite3.Error, MirrorTooLargeError) as exc:
            log.warning("decisions read SQLite, not memory: %s", exc)
        except Exception:  # MemoryError on a small box, a bug: never leave _pending growing
            log.exception("pass mirror load failed; decisions read SQLite")
        finally:
            self._finish_load(mirror, generation, version)

    def _read_apart(self) -> PassMirror:
        # Its own connection, closed after: the pages it read do not stay in the store's cache.
        conn = sqlite3.connect(str(self._path), isolation_level=None, timeout=10)
        try:
            return load_mirror(conn, self.max_rows)[0]
        finally:
            conn.close()

    def _finish_load(self, mirror: PassMirror | None, generation: int, version: int) -> None:
        with self._lock:
            pending, self._pending, self._loader = self._pending, None, None
            if mirror is None:
                self._retry_at = time.monotonic() + RETRY_S
                return
            if generation != self._generation or pending is None:
                return  # made stale again while loading: the next decision starts another
            mirror.apply(pending)
            if mirror.rows() > self.max_rows:
                self._retry_at = time.monotonic() + RETRY_S
                return
            self._mirror, self._version = mirror, version
