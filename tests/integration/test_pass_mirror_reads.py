"""The mirror's question before each decision (has another connection committed?) leaves no
read transaction open: a checkpoint by another connection can still empty the WAL."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from edge.cache import GateCache


def test_asking_the_data_version_holds_no_snapshot(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    deadline = time.monotonic() + 10
    while not cache.mirrored:  # loads in the background once asked
        assert time.monotonic() < deadline, "the mirror did not load"
        time.sleep(0.01)
    for _ in range(3):
        cache.pass_record("ab" * 8, 7, b"d" * 32)
    other = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    other.execute("INSERT INTO revocations VALUES (?, '', 0, NULL, 'local')", ("cd" * 8,))
    # A reader holding a snapshot would make the checkpoint busy (1) and leave frames behind.
    busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    assert cache.pass_record("cd" * 8, None, None).revoked  # and the commit is seen
    other.close()
    cache.close()
