"""What ingest writes, on SQLite (executemany) and PostgreSQL (COPY through a staging table):
every column of an event row, new rows told from resent ones, and gate statuses applied a
transaction at a time leaving the rows that applying them one by one would; and the live
batches of stored events, built without the models, byte for byte what the models give."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from central.ingest.fanout import LIVE_SLICE, event_batches
from central.store import ingest_store, presence
from central.store.db import make_engine, upgrade
from central.store.tables import events, gates
from central.views import event_view
from protocol.messages import (
    EventBatch,
    EventType,
    GateEvent,
    GateState,
    GateStatus,
    LiveBatch,
    LiveMessage,
)
from tests.integration.services import pg_schema

AT = datetime(2026, 12, 1, 8, 30, tzinfo=timezone(timedelta(hours=8)))
NOW = datetime(2026, 12, 1, 1, tzinfo=UTC)
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = nullcontext(f"sqlite:///{tmp_path / 'central.db'}")
    with pg_schema() if request.param == "postgresql" else url as db_url:
        engine = make_engine(db_url)
        upgrade(engine)
        yield engine
        engine.dispose()


def varied_events() -> list[GateEvent]:
    """Every column set, unset, and at odd values."""
    return [
        GateEvent(epoch=7, seq=1, at=AT, type=EventType.DECISION, granted=True, reason="ok",
                  pass_id="0123456789abcdef", temperature_c=36.5, snapshot="7-1.jpg",
                  details={"clock_skew_s": 0.4, "flags": ["fever_retest"], "note": "门 东"}),
        GateEvent(epoch=7, seq=2, at=AT.astimezone(timezone(timedelta(hours=-3, minutes=-30))),
                  type=EventType.DOOR_FORCED),
        GateEvent(epoch=7, seq=3, at=AT.astimezone(UTC), type=EventType.DECISION, granted=False,
                  reason="revoked", details={"clock_skew_s": 2, "direction": "out", "flags": []}),
    ]  # fmt: skip


def test_every_column_is_stored_as_sent_and_only_new_rows_count(engine: Engine) -> None:
    sent = varied_events()
    first = EventBatch(site="s", gate="g", epoch_first_seq={7: 1}, events=sent[:2])
    again = EventBatch(site="s", gate="g", events=[sent[1], sent[2]])  # seq 2 twice
    result = ingest_store.StoreResult()
    with engine.begin() as conn:
        ingest_store.store_batches(conn, [first, again], NOW, result)
    assert [ev.seq for _, _, _, ev in result.inserted] == [1, 2, 3]
    assert result.duplicates == 1
    assert result.acks == {("s", "g", 7): 3}
    with engine.connect() as conn:
        rows = {r.seq: r for r in conn.execute(select(events).order_by(events.c.seq))}
    assert sorted(rows) == [1, 2, 3]
    assert {r.id for r in rows.values()} == {eid for eid, _, _, _ in result.inserted}
    for ev in sent:
        row = rows[ev.seq]
        offset = ev.at.utcoffset()
        assert offset is not None
        assert (row.site, row.gate, row.epoch, row.type) == ("s", "g", 7, ev.type.value)
        assert _aware(row.at) == ev.at and row.at_offset_min == offset.total_seconds() // 60
        assert _aware(row.received_at) == NOW
        assert (row.granted, row.reason, row.pass_id) == (ev.granted, ev.reason, ev.pass_id)
        assert (row.temperature_c, row.snapshot) == (ev.temperature_c, ev.snapshot)
        assert row.clock_skew_s == ev.details.get("clock_skew_s")
        assert row.details == ev.details  # a JSON object, not a string holding one

    resent = ingest_store.StoreResult()
    with engine.begin() as conn:  # the gate did not hear the ack and sends it all again
        ingest_store.store_batches(conn, [first, again], NOW + timedelta(seconds=1), resent)
    assert resent.inserted == [] and resent.duplicates == 4
    assert resent.acks == {("s", "g", 7): 3}


def test_live_event_batches_are_what_the_models_give() -> None:
    sent = varied_events() * 150  # 450: three slices
    inserted = [(1000 + i, "s", f"g{i % 3}", ev) for i, ev in enumerate(sent)]
    received = NOW.isoformat()
    by_models = [
        LiveBatch(items=[
            LiveMessage(kind="event", id=eid, site=site, gate=gate,
                        data=event_view(eid, site, gate, ev, received))
            for eid, site, gate, ev in inserted[start : start + LIVE_SLICE]
        ]).model_dump_json().encode()
        for start in range(0, len(inserted), LIVE_SLICE)
    ]  # fmt: skip
    assert event_batches(inserted, received) == by_models
    assert len(by_models) == 3


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


GATES = ("g1", "g2", "g3")
statuses = st.lists(
    st.tuples(st.sampled_from((*GATES, "unregistered")), st.booleans(), st.integers(0, 9)),
    min_size=1,
    max_size=12,
)


def _status(online: bool, backlog: int) -> GateStatus:
    state = GateState.ONLINE if online else GateState.OFFLINE
    return GateStatus(state=state, backlog=backlog)


def _gate_rows(engine: Engine) -> list[tuple[Any, ...]]:
    query = select(gates.c.gate, gates.c.online, gates.c.last_seen, gates.c.offline_since,
                   gates.c.status).order_by(gates.c.gate)  # fmt: skip
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def check_statuses(url_one: str, url_all: str, sent: list[tuple[str, bool, int]]) -> None:
    """One database gets the statuses a call each, the other all in one call: same rows."""
    made = []
    for url in (url_one, url_all):
        engine = make_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            for gate in GATES:
                presence.register_gate(conn, "s", gate, NOW)
            # Some gates online before: going offline must then start offline_since.
            presence.apply_status(conn, "s", "g1", _status(True, 0), NOW)
        made.append(engine)
    one, together = made
    try:
        received = [("s", gate, _status(online, n)) for gate, online, n in sent]
        changed_one = []
        later = NOW + timedelta(minutes=1)
        for site, gate, status in received:
            with one.begin() as conn:
                if presence.apply_status(conn, site, gate, status, later):
                    changed_one.append((site, gate, status))
        with together.begin() as conn:
            changed_all = presence.apply_statuses(conn, received, later)
        assert changed_all == changed_one
        assert _gate_rows(together) == _gate_rows(one)
    finally:
        for engine in made:
            engine.dispose()


@settings(max_examples=40, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(statuses)
def test_statuses_in_one_transaction_leave_the_rows_one_at_a_time_would_sqlite(
    sent: list[tuple[str, bool, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_statuses(f"sqlite:///{tmp}/one.db", f"sqlite:///{tmp}/all.db", sent)


@settings(max_examples=10, deadline=None, phases=NO_SHRINK,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(statuses)
def test_statuses_in_one_transaction_leave_the_rows_one_at_a_time_would_postgresql(
    sent: list[tuple[str, bool, int]],
) -> None:
    with pg_schema() as url_one, pg_schema() as url_all:
        check_statuses(url_one, url_all, sent)
