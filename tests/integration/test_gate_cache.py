from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.cache import PAGE_CACHE_KIB, SCHEMA_VERSION, CacheError, GateCache, Retention
from protocol.messages import EventType

AT = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def test_wal_and_migrations_recorded(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    assert cache.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cache.db.execute("PRAGMA cache_size").fetchone()[0] == -PAGE_CACHE_KIB
    assert cache.schema_version() == SCHEMA_VERSION
    cache.close()
    again = GateCache(tmp_path / "g.db")  # reopening must not re-run migrations
    assert again.schema_version() == SCHEMA_VERSION


def _open_and_close(path: str) -> None:
    GateCache(Path(path)).close()


def test_processes_opening_a_new_file_together_migrate_it_once(tmp_path: Path) -> None:
    # The agent and a `gate present` may create the file at the same moment.
    ctx = multiprocessing.get_context("fork")
    for attempt in range(10):
        path = tmp_path / f"g{attempt}.db"
        procs = [ctx.Process(target=_open_and_close, args=(str(path),)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
        cache = GateCache(path)
        assert cache.schema_version() == SCHEMA_VERSION
        cache.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    GateCache(tmp_path / "g.db").close()
    conn = sqlite3.connect(tmp_path / "g.db")
    conn.execute("INSERT INTO migrations VALUES (99, 0)")
    conn.commit()
    with pytest.raises(CacheError, match="newer"):
        GateCache(tmp_path / "g.db")


def test_journal_seq_is_monotonic_across_restarts_and_epochs_grow(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    cache = GateCache(path)
    e1 = cache.begin_boot()
    seqs = [cache.journal_append(EventType.DECISION, AT, granted=True) for _ in range(3)]
    cache.close()
    cache = GateCache(path)
    e2 = cache.begin_boot()
    seqs.append(cache.journal_append(EventType.DECISION, AT, granted=False, reason="expired"))
    assert seqs == [1, 2, 3, 4]
    assert e2 > e1 >= int(time.time()) - 5
    events = cache.journal_unacked()
    assert [(e.epoch, e.seq) for e in events] == [(e1, 1), (e1, 2), (e1, 3), (e2, 4)]
    assert events[-1].reason == "expired"
    assert events[0].at == AT


def test_seq_is_never_reused_after_pruning(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db", Retention(acked_days=0))
    for _ in range(5):
        cache.journal_append(EventType.DECISION, AT)
    cache.ack_through(5)
    cache.prune(now=AT.timestamp() + 10)
    assert cache.journal_unacked() == []
    assert cache.journal_append(EventType.DECISION, AT) == 6


def test_grant_updates_usage_in_the_same_transaction(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    for _ in range(2):
        cache.journal_append(
            EventType.DECISION, AT, granted=True, pass_id="ab" * 8, use=("east", "in", 2e9)
        )
    usage = cache.usage("ab" * 8)
    assert usage is not None
    assert (usage.uses, usage.last_direction, usage.last_gate) == (2, "in", "east")
    assert usage.last_at == AT.timestamp()
    assert cache.usage("cd" * 8) is None


def test_ack_through_and_backlog(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    for _ in range(10):
        cache.journal_append(EventType.DECISION, AT)
    assert cache.backlog() == 10
    assert cache.ack_through(4) == 4
    assert cache.backlog() == 6
    assert [e.seq for e in cache.journal_unacked(limit=3)] == [5, 6, 7]
    assert [e.seq for e in cache.journal_unacked(after_seq=8)] == [9, 10]


def test_revocations(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    cache.revoke("ab" * 8, "lost", until=AT.timestamp())
    assert cache.is_revoked("ab" * 8)
    assert not cache.is_revoked("cd" * 8)
    cache.unrevoke("ab" * 8)
    assert not cache.is_revoked("ab" * 8)


def test_prune_bounds_growth_and_keeps_alerts_longest(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db", Retention(acked_days=1, max_unacked=5))
    now = AT.timestamp()
    cache.journal_append(EventType.DOOR_FORCED, AT)  # seq 1, an alert
    for _ in range(6):
        cache.journal_append(EventType.DECISION, AT)  # seq 2..7
    cache.journal_append(
        EventType.DECISION, AT, granted=False, reason="fever", details={"flags": ["fever"]}
    )  # seq 8, a fever alert
    cache.revoke("aa" * 8, until=now - 3 * 86400)
    cache.revoke("bb" * 8, until=now + 86400)
    cache.revoke("cc" * 8)  # unknown expiry: kept
    cache.journal_append(
        EventType.DECISION, AT, granted=True, pass_id="dd" * 8, use=("g", "in", now - 3 * 86400)
    )  # seq 9
    dropped: list[tuple[int, list[str]]] = []
    counts = cache.prune(now=now, on_dropped=lambda n, r: dropped.append((n, r)))
    kept = [e.seq for e in cache.journal_unacked()]
    assert kept == [1, 6, 7, 8, 9]
    epoch = cache.epoch
    assert counts["dropped"] == 4 and dropped == [(4, [f"{epoch}:2-5"])]
    assert cache.dropped_total() == 4
    assert counts["revocations"] == 1 and counts["usage"] == 1
    assert cache.is_revoked("bb" * 8) and cache.is_revoked("cc" * 8)
    assert not cache.is_revoked("aa" * 8)


def test_journalled_entry_survives_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    pid = os.fork()
    if pid == 0:  # child: write and die without closing anything
        cache = GateCache(path)
        cache.journal_append(EventType.DECISION, AT, granted=True, pass_id="ab" * 8)
        os._exit(0)
    os.waitpid(pid, 0)
    cache = GateCache(path)
    [event] = cache.journal_unacked()
    assert (event.seq, event.pass_id, event.granted) == (1, "ab" * 8, True)


def test_entries_outside_the_wire_bounds_still_go_with_their_seq(tmp_path: Path) -> None:
    # A clock battery gone bad (year 2101), a sensor answering 999 °C, a runaway detail: the
    # journal must not wedge on them, and central must get each seq.
    cache = GateCache(tmp_path / "g.db")
    cache.journal_append(EventType.DECISION, AT.replace(year=2101), reason="ok")
    cache.journal_append(EventType.DECISION, AT, temperature_c=999.0, granted=False)
    cache.journal_append(EventType.DEVICE_FAULT, AT, details={"error": "x" * 5000})
    cache.journal_append(EventType.DECISION, AT, reason="ok")
    events = cache.journal_unacked()
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[0].details["invalid_fields"] == ["at"]
    assert events[0].details["gate_at"].startswith("2101-")
    assert events[0].reason == "ok"
    assert (events[1].temperature_c, events[1].granted) == (None, False)
    assert events[1].details["invalid_fields"] == ["temperature_c"]
    assert events[2].details == {"invalid_fields": ["details"]}
    assert "invalid_fields" not in events[3].details
    cache.close()


@pytest.mark.parametrize("pass_id", ["ab" * 8, "cd" * 8, "ef" * 8, "01" * 8])
@pytest.mark.parametrize("slot", [None, 7, 8])
def test_pass_record_answers_as_the_three_lookups_do(
    tmp_path: Path, pass_id: str, slot: int | None
) -> None:
    # The decision reads one combined query; it must agree with the separate ones.
    cache = GateCache(tmp_path / "g.db")
    cache.revoke("ab" * 8)
    cache.revoke("cd" * 8)
    for pid in ("cd" * 8, "ef" * 8):
        cache.journal_append(EventType.DECISION, AT, granted=True, pass_id=pid,
                             use=("east", "in", 2e9), live_slot=7)  # fmt: skip
    cache.journal_append(EventType.DECISION, AT, verified=(b"d" * 32, b"k" * 4, None))
    record = cache.pass_record(pass_id, slot, None)
    assert record.revoked is cache.is_revoked(pass_id)
    assert record.usage == cache.usage(pass_id)
    assert record.live_code_used is (slot is not None and cache.live_code_used(pass_id, slot))
    assert not record.signature_verified
    assert cache.pass_record(pass_id, slot, b"d" * 32).signature_verified
    assert not cache.pass_record(pass_id, slot, b"e" * 32).signature_verified
    cache.close()
