"""Who does the once-per-cluster jobs: one leader per job, by PostgreSQL advisory lock.

A replica leads a job while it holds the job's session-level advisory lock on a connection of
its own. The lock lives as long as that connection: when the leader dies (SIGKILL, lost host)
PostgreSQL drops the connection, the lock frees and another replica takes it on its next try.
On SQLite there is one replica by construction, so it always leads.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from enum import IntEnum

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)
CHECK_EVERY_S = 1.0  # a held lock's connection is probed at most this often


class Job(IntEnum):
    """Jobs that must run once per cluster; the value is the advisory lock's second key."""

    HOLES = 1  # replay requests and giving up on gaps (with their missing_events alerts)
    OFFLINE = 2  # gate_offline alerts
    RETENTION = 3  # the retention purge


class Leadership:
    """This replica's leaderships; `leads(job)` is cheap enough to ask before every run."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.single = engine.dialect.name != "postgresql"
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._space = 0  # first lock key: the schema, so test schemas in one database differ
        self._held: set[Job] = set()
        self._checked = 0.0
        self.changes = 0  # leaderships taken or lost, for metrics

    def leads(self, job: Job) -> bool:
        """True if this replica leads `job` now (taking the lead if it is free)."""
        if self.single:
            return True
        with self._lock:
            try:
                return self._leads(job)
            except Exception as exc:
                self._drop(f"{type(exc).__name__}: {exc}")
                return False

    def held(self) -> set[Job]:
        if self.single:
            return set(Job)
        with self._lock:
            return set(self._held)

    def close(self) -> None:
        """Give every lead up at once (closing the connection frees its locks)."""
        with self._lock:
            self._drop("")

    def _leads(self, job: Job) -> bool:
        conn = self._connection()
        now = time.monotonic()
        if job in self._held:
            if now - self._checked >= CHECK_EVERY_S:
                conn.execute(text("SELECT 1"))  # raises if the connection (and lock) is gone
                self._checked = now
            return True
        got = conn.execute(
            text("SELECT pg_try_advisory_lock(:space, :job)"), {"space": self._space, "job": job}
        ).scalar_one()
        if got:
            self._held.add(job)
            self.changes += 1
            log.info("this replica now leads %s", job.name.lower())
        return bool(got)

    def _connection(self) -> Connection:
        if self._conn is None:
            # Autocommit: a connection idle in a transaction would hold back VACUUM for as long
            # as this replica leads.
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            self._space = zlib.crc32(f"menjin:{schema}".encode()) - 2**31  # an int4
            self._conn = conn
            self._checked = time.monotonic()
        return self._conn

    def _drop(self, why: str) -> None:
        if why and self._held:
            log.warning("lost the lead of %s (%s)", sorted(j.name.lower() for j in self._held), why)
        self.changes += len(self._held)
        self._held.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # never back to the pool: it may still hold a lock
                conn.close()
            except Exception:
                log.debug("closing the leadership connection failed", exc_info=True)
