"""The ack central stores and sends is the contiguous prefix of what it holds, however batches
arrive: in order (answered from the transaction alone), out of order, twice, or with entries
the gate says it dropped (answered by probing the store)."""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from central import ingest_commit
from central.ingest_check import Parsed
from central.store.db import make_engine, upgrade
from central.store.tables import gate_epochs
from protocol.messages import EventBatch, EventType, GateEvent
from tests.integration.services import pg_schema

AT = datetime(2026, 12, 1, 8, tzinfo=UTC)
GATES = ("g1", "g2")
# A transaction: a few batches, each (gate, seqs, where a range the gate dropped starts or None).
batch = st.tuples(
    st.sampled_from(GATES),
    st.lists(st.integers(1, 24), min_size=1, max_size=8),
    st.none() | st.integers(1, 30),  # the first seq of a dropped range
)
# Shrinking a failure re-creates databases for minutes; the unshrunk example is readable enough.
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
transactions = st.lists(st.lists(batch, min_size=1, max_size=4), min_size=1, max_size=6)


def message(gate: str, seqs: list[int], dropped: int | None) -> Parsed:
    events = [
        GateEvent(epoch=1, seq=s, at=AT + timedelta(seconds=s), type=EventType.DECISION)
        for s in sorted(set(seqs))
    ]
    if dropped is not None:  # the report is an entry of its own, after the ones it names
        # One range per first seq (central keeps the first report of a range start).
        first, span = dropped, dropped % 4
        events.append(GateEvent(epoch=1, seq=1000 + first, at=AT,
                                type=EventType.JOURNAL_DROPPED,
                                details={"ranges": [f"1:{first}-{first + span}"]}))  # fmt: skip
    batch = EventBatch(site="s", gate=gate, epoch_first_seq={1: 1}, events=events)
    return Parsed("s", gate, "events", batch)


def expected_ack(held: set[int]) -> int:
    acked = 0
    while acked + 1 in held:
        acked += 1
    return acked


def check(url: str, txs: list[list[tuple[str, list[int], int | None]]]) -> None:
    engine = make_engine(url)
    upgrade(engine)
    held: dict[str, set[int]] = {g: set() for g in GATES}
    try:
        for tx in txs:
            parsed = [message(*b) for b in tx]
            done = ingest_commit.store(engine, parsed, Counter())
            for p in parsed:
                held[p.gate] |= {e.seq for e in p.message.events}
                for e in p.message.events:
                    for _, first, last in e.dropped_ranges() if e.details else []:
                        held[p.gate] |= set(range(first, last + 1))
            for (_, gate, _), acked in done.result.acks.items():
                assert acked == expected_ack(held[gate]), repr((txs, sorted(held[gate])))
        with engine.connect() as conn:
            rows = conn.execute(select(gate_epochs)).all()
        for r in rows:
            assert r.acked_seq == expected_ack(held[r.gate])
            assert (r.gap_since is None) == (r.acked_seq >= r.max_seq)
    finally:
        engine.dispose()


@settings(
    max_examples=60, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow]
)
@given(transactions)
def test_acks_on_sqlite(txs: list[list[tuple[str, list[int], int | None]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check(f"sqlite:///{Path(tmp) / 'c.db'}", txs)


@settings(
    max_examples=25, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow]
)
@given(transactions)
def test_acks_on_postgresql(txs: list[list[tuple[str, list[int], int | None]]]) -> None:
    with pg_schema() as url:
        check(url, txs)
