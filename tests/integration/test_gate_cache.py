from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import pass_mirror, pass_state
from edge.cache import PAGE_CACHE_KIB, SCHEMA_VERSION, CacheError, GateCache, Retention
from edge.decide import Direction, GateContext, PassRecord, Reason, decide
from edge.sigmemo import SignatureMemo
from protocol.epass import key_id_of
from protocol.epass_bound import encode_bound_pass
from protocol.messages import EventType
from tests.integration.agent_helpers import wait_for
from tests.unit.livecode_helpers import ISSUER, NOW, RESIDENT, SLOT, ed25519_phone

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


# --- the decision's in-memory mirror of pass state (edge/pass_mirror.py) ----------------------

PASS_IDS = ["ab" * 8, "cd" * 8, "ef" * 8, "AB" * 8, "0x" + "ab" * 7]  # the last two: not canonical
SLOTS = [7, 8]
DIGESTS = [bytes([i]) * 32 for i in range(3)]
KEYS = [b"k" * 4, b"j" * 4]  # digest i belongs to key i % 2
UNTILS = [None, AT.timestamp() - 3 * 86_400, AT.timestamp() + 86_400]


def _truth(path: Path, pass_id: str, slot: int | None, digest: bytes | None) -> PassRecord:
    """What a fresh reader of the file says (a connection of its own, which only reads)."""
    conn = sqlite3.connect(path)
    try:
        return pass_state.read_record(conn, pass_id, slot, digest)
    finally:
        conn.close()


def _mirrored(cache: GateCache, timeout: float = 10.0) -> bool:
    """Whether the mirror is (or within timeout comes) in: a store loads it in the background."""
    deadline = time.monotonic() + timeout
    while not cache.mirrored:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _assert_agrees(cache: GateCache) -> None:
    for pass_id in PASS_IDS:
        for slot in [None, *SLOTS]:
            for digest in [None, *DIGESTS]:
                got = cache.pass_record(pass_id, slot, digest)
                assert got == _truth(cache.path, pass_id, slot, digest), (pass_id, slot, digest)


_pid = st.sampled_from(PASS_IDS)
_until = st.sampled_from(UNTILS)
_write = st.one_of(
    st.tuples(st.just("revoke"), _pid, _until, st.sampled_from(["local", "central"])),
    st.tuples(st.just("unrevoke"), _pid),
    st.tuples(
        st.just("delta"),
        st.booleans(),
        st.lists(st.tuples(_pid, _until), max_size=2),
        st.lists(_pid, max_size=2),
    ),
    st.tuples(st.just("use"), _pid, _until, st.sampled_from(["in", "out"])),
    st.tuples(st.just("live"), _pid, st.sampled_from(SLOTS), st.integers(0, 2)),
    st.tuples(st.just("verified"), st.integers(0, 2), _until),
    st.tuples(st.just("prune"), st.integers(0, 3)),
    st.tuples(st.just("forget"), st.sampled_from(KEYS)),
    st.tuples(st.just("restart")),
)


def _do(cache: GateCache, op: tuple[Any, ...]) -> GateCache:
    kind = op[0]
    if kind == "revoke":
        cache.revoke(op[1], "lost", until=op[2], source=op[3])
    elif kind == "unrevoke":
        cache.unrevoke(op[1])
    elif kind == "delta":
        cache.apply_delta(1, op[1], [(p, "lost", u) for p, u in op[2]], op[3])
    elif kind == "use":
        cache.journal_append(EventType.DECISION, AT, granted=True, pass_id=op[1],
                             use=("east", op[3], op[2]))  # fmt: skip
    elif kind == "live":
        at = datetime.fromtimestamp(AT.timestamp() - op[3] * 86_400, UTC)
        cache.journal_append(EventType.DECISION, at, pass_id=op[1], live_slot=op[2])
    elif kind == "verified":
        verified = (DIGESTS[op[1]], KEYS[op[1] % 2], op[2])
        cache.journal_append(EventType.DECISION, AT, verified=verified)
    elif kind == "prune":
        cache.prune(now=AT.timestamp() + op[1] * 86_400)
    elif kind == "forget":
        cache.forget_signatures({op[1]})
    else:
        cache.close()
        cache = GateCache(cache.path, cache.retention)
    return cache


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(_write, min_size=1, max_size=12))
def test_the_mirror_agrees_with_the_file_after_every_write(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    # A small replay memory, so the prune of the count is taken too.
    retention = Retention(max_live_codes=2, live_code_memory_s=1.5 * 86_400)
    cache = GateCache(tmp_path_factory.mktemp("mirror") / "g.db", retention)
    try:
        assert _mirrored(cache)
        for op in ops:
            cache = _do(cache, op)
            if op[0] == "restart":
                _assert_agrees(cache)  # from SQLite, while the mirror loads
                assert _mirrored(cache)
            assert cache.mirrored, op  # the store's own writes never make the mirror stale
            _assert_agrees(cache)
    finally:
        cache.close()


def test_a_restart_keeps_the_replay_memory(tmp_path: Path) -> None:
    phone = ed25519_phone()
    code = phone.live(encode_bound_pass(RESIDENT, phone.device, ISSUER), RESIDENT.pass_id, SLOT)
    ctx = GateContext(site="hutong-12", gate="east", direction=Direction.IN,
                      trusted={key_id_of(ISSUER.verify_key): ISSUER.verify_key})  # fmt: skip
    cache = GateCache(tmp_path / "g.db")
    first = decide(code, ctx, cache, NOW)
    assert first.granted
    cache.journal_append(
        EventType.DECISION, NOW, granted=True, pass_id=first.pass_id,
        live_slot=first.live_slot, verified=first.verified_signature(),
    )  # fmt: skip
    assert decide(code, ctx, cache, NOW).reason is Reason.REPLAYED
    cache.close()
    again = GateCache(tmp_path / "g.db")
    fresh = replace(ctx, verified=SignatureMemo())  # a new process remembers nothing itself
    assert decide(code, fresh, again, NOW).reason is Reason.REPLAYED  # read from SQLite
    assert _mirrored(again)
    fresh = replace(ctx, verified=SignatureMemo())
    assert decide(code, fresh, again, NOW).reason is Reason.REPLAYED  # and from memory
    again.close()


def _revoke_and_use_apart(path: str, pass_id: str) -> None:
    """Another process (`gate revoke`, `gate present`) writing the same file."""
    other = GateCache(Path(path))
    other.revoke(pass_id, "lost")
    other.journal_append(EventType.DECISION, AT, granted=True, pass_id=pass_id,
                         use=("east", "in", None), live_slot=7)  # fmt: skip
    other.close()


def test_a_write_from_another_process_is_seen_at_once(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    pass_id = PASS_IDS[0]
    assert _mirrored(cache)
    assert cache.pass_record(pass_id, 7, None) == PassRecord(False, None, False, False)
    proc = multiprocessing.get_context("spawn").Process(
        target=_revoke_and_use_apart, args=(str(cache.path), pass_id)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    # The very next question sees it (from SQLite, while the mirror is loaded again)...
    record = cache.pass_record(pass_id, 7, None)
    assert (record.revoked, record.live_code_used) == (True, True)
    assert record.usage is not None and record.usage.uses == 1
    # ...and the reloaded mirror holds it too.
    assert _mirrored(cache), "the mirror was not loaded again"
    assert cache.pass_record(pass_id, 7, None) == record
    cache.close()


def test_a_write_on_the_store_connection_past_its_methods_is_seen(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    assert _mirrored(cache)
    cache.db.execute("INSERT INTO revocations VALUES (?, '', 0, NULL, 'local')", (PASS_IDS[1],))
    cache.revoke(PASS_IDS[2])  # an own write after it must not hide it
    assert cache.pass_record(PASS_IDS[1], None, None).revoked
    assert cache.pass_record(PASS_IDS[2], None, None).revoked
    cache.close()


def test_own_writes_while_the_mirror_loads_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = GateCache(tmp_path / "g.db")
    other = GateCache(tmp_path / "g.db")  # its own connection: its commit makes the mirror stale
    written = threading.Event()

    def load_then_wait(conn: sqlite3.Connection, max_rows: int) -> Any:
        loaded = load(conn, max_rows)  # the file as it was before the writes below
        assert written.wait(10)
        return loaded

    load = pass_mirror.load_mirror
    monkeypatch.setattr(pass_mirror, "load_mirror", load_then_wait)
    other.revoke(PASS_IDS[0])
    assert cache.pass_record(PASS_IDS[0], None, None).revoked  # a load begins in the background
    for slot in range(5):  # written after the load read the file, before it is swapped in
        cache.journal_append(EventType.DECISION, AT, pass_id=PASS_IDS[1], live_slot=slot,
                             use=("east", "in", None))  # fmt: skip
    written.set()
    assert _mirrored(cache), "the mirror was not loaded again"
    assert cache.pass_record(PASS_IDS[1], 4, None).live_code_used
    _assert_agrees(cache)
    other.close()
    cache.close()


def test_more_pass_state_than_the_bound_is_read_from_sqlite(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db", Retention(max_mirrored_rows=2))
    assert _mirrored(cache)
    for pass_id in PASS_IDS:
        cache.revoke(pass_id)
    assert not cache.mirrored
    _assert_agrees(cache)
    cache.close()
    again = GateCache(tmp_path / "g.db", Retention(max_mirrored_rows=2))
    assert not _mirrored(again, timeout=1.0)  # the load finds too much and gives up
    _assert_agrees(again)
    again.close()


@pytest.mark.allow_logged_exceptions
def test_a_mirror_load_that_dies_leaves_nothing_growing_and_decisions_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(conn: sqlite3.Connection, max_rows: int) -> Any:
        raise MemoryError

    monkeypatch.setattr(pass_mirror, "load_mirror", out_of_memory)
    cache = GateCache(tmp_path / "g.db")
    keeper = cache._mirror
    assert not cache.pass_record(PASS_IDS[0], None, None).revoked  # starts the (dying) load
    wait_for(lambda: keeper._loader is None, 10.0, "the failed load to finish")
    for _ in range(50):  # before the fix every commit was kept for a load that never ended
        cache.journal_append(EventType.DECISION, AT, pass_id=PASS_IDS[1], use=("east", "in", None))
    assert keeper._pending is None
    cache.revoke(PASS_IDS[0])
    assert cache.pass_record(PASS_IDS[0], None, None).revoked  # from SQLite, strict as ever
    cache.close()
