"""A transaction's keyed lookups (its gates' epochs, lost ranges and statuses): the same rows
as an IN list on either database, and on PostgreSQL one statement text however many gates the
transaction holds, so it is compiled and parsed once, not once per transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event, select, tuple_

from central.store import ingest_store, presence
from central.store.db import keys_in
from central.store.tables import gate_epochs
from protocol.messages import EventBatch, EventType, GateEvent, GateState, GateStatus
from tests.integration import test_ingest_rows

NOW = datetime(2026, 12, 1, 1, tzinfo=UTC)
engine = test_ingest_rows.engine  # the fixture: SQLite and PostgreSQL


def _batch(gate: str, epoch: int, seq: int) -> EventBatch:
    entry = GateEvent(epoch=epoch, seq=seq, at=NOW, type=EventType.DECISION, granted=True)
    return EventBatch(site="s1", gate=gate, events=[entry], epoch_first_seq={epoch: 1})


def test_keys_in_finds_the_rows_an_in_list_finds(engine: Engine) -> None:
    with engine.begin() as conn:
        result = ingest_store.StoreResult()
        batches = [_batch(f"g{i}", epoch, 1) for i in range(40) for epoch in (1, 2)]
        ingest_store.store_batches(conn, batches, NOW, result)
        c = gate_epochs.c
        asked = [("s1", f"g{i}", e) for i in range(0, 60, 3) for e in (2, 3)]  # some absent
        for keys in (asked, asked[:1]):
            cols = [c.site, c.gate, c.epoch]
            found = select(*cols).where(keys_in(conn.dialect.name, cols, keys))
            listed = select(*cols).where(tuple_(*cols).in_(keys))
            got = sorted(tuple(r) for r in conn.execute(found))
            assert got == sorted(tuple(r) for r in conn.execute(listed))
            assert got == sorted(k for k in keys if int(k[1][1:]) < 40 and k[2] == 2)


def _statements(engine: Engine, gates: range) -> list[str]:
    """The SELECTs the store sends for a transaction of these gates' second entries and their
    statuses (each epoch known and acked through 1, so nothing but the lookups is probed)."""
    sent: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        sent.append(statement)

    batches = [_batch(f"g{i}", 1, 2) for i in gates]
    statuses = [("s1", f"g{i}", GateStatus(state=GateState.ONLINE)) for i in gates]
    with engine.begin() as conn:
        event.listen(conn, "before_cursor_execute", record)
        ingest_store.store_batches(conn, batches, NOW, ingest_store.StoreResult())
        presence.apply_statuses(conn, statuses, NOW)
        event.remove(conn, "before_cursor_execute", record)
    return [s for s in sent if s.lstrip().upper().startswith("SELECT")]


def test_lookups_send_one_text_whatever_the_number_of_gates(engine: Engine) -> None:
    with engine.begin() as conn:
        for i in range(300):
            presence.register_gate(conn, "s1", f"g{i}", NOW)
        ingest_store.store_batches(
            conn, [_batch(f"g{i}", 1, 1) for i in range(300)], NOW, ingest_store.StoreResult()
        )
    few, many = _statements(engine, range(3)), _statements(engine, range(100, 300))
    assert len(few) == len(many) >= 3  # the epochs, the lost ranges, the gates' states
    if engine.dialect.name == "postgresql":
        assert few == many
    else:  # SQLite keeps the IN list (it has no psycopg parse to save): its text grows
        assert few != many
