"""One gate's leaked credentials against central ingest, through a real broker (#8): values out
of range, a message whose storage fails, a seq far ahead, snapshots nobody asked for, a burst
beyond the ingest queue, and a paho callback that raises."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from central.ingest import Ingest
from central.store.tables import snapshots
from edge.mqtt_settings import MqttSection
from protocol import topics
from protocol.messages import MAX_INT, MAX_SNAPSHOT_BYTES, EventType, SnapshotUpload
from protocol.topics import GateTopic
from tests.integration.agent_helpers import wait_for
from tests.integration.ingest_helpers import (
    SITE,
    Central,
    raw_client,
    running_central,
    running_gate,
)
from tests.integration.services import Mosquitto
from tests.integration.stack import stored

AT = "2026-12-01T08:00:00+08:00"


def event(epoch: int = 1, seq: int = 1, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "epoch": epoch, "seq": seq, "at": AT, "type": "decision"} | fields


def batch(gate: str, *events: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"v": 1, "site": SITE, "gate": gate, "events": list(events)} | extra)


def events_topic(gate: str) -> str:
    return topics.gate_topic(SITE, gate, GateTopic.EVENTS)


def new_rejects(ingest: Ingest, before: Counter[str]) -> dict[str, int]:
    return {k: v - before[k] for k, v in ingest.rejects.items() if v - before[k]}


HOSTILE = [
    batch("east", event(seq=2**63)),
    batch("east", event(seq=MAX_INT + 1)),
    batch("east", event(epoch=2**64)),
    batch("east", event(epoch=-1)),
    batch("east", event(at="9999-12-31T23:59:59-01:00")),
    batch("east", event(at="2200-01-01T00:00:00Z")),
    batch("east", event(at="2026-12-01T08:00:00")),  # no UTC offset
    batch("east", event(temperature_c=1e308)),
    batch("east", event(reason="x" * 10_000)),
    batch("east", event(pass_id="x" * 1000)),
    batch("east", event(snapshot="../../etc/passwd")),
    batch("east", event(details={"n": 10**30})),
    batch("east", event(details={"s": "x" * 100_000})),
    batch("east", event(details={f"k{i}": i for i in range(1000)})),
    batch("east", event(type="journal_dropped", details={"ranges": [f"1:1-{2**70}"]})),
    batch("east", event(), epoch_first_seq={"1": 2**63}),
    batch("east", event()).replace('"seq": 1', '"seq": 1, "temperature_c": NaN'),
    batch("east", event()).replace('"seq": 1', '"seq": 1, "temperature_c": 1e400'),
]


@pytest.fixture
def central(workdir: Path, live_broker: Mosquitto) -> Iterator[Central]:
    with running_central(workdir, {"url": live_broker.url}) as c:
        yield c


def test_out_of_range_values_are_rejected_and_other_gates_carry_on(
    workdir: Path, central: Central, live_broker: Mosquitto
) -> None:
    """A flood of out-of-range messages on one gate's topic: each rejected and counted, none
    reaches storage, and another gate's events are stored and acked as usual meanwhile."""
    cfg = MqttSection(url=live_broker.url, resend_after_s=1.0, status_interval_s=1.0)
    attacker = raw_client(live_broker.port)
    time.sleep(0.5)  # retained statuses of other tests' gates arrive first, as unknown gates
    before = central.ingest.rejects.copy()
    rounds = 20
    with running_gate(workdir, cfg, "west") as west:

        def flood() -> None:
            for _ in range(rounds):
                for payload in HOSTILE:
                    attacker.publish(events_topic("east"), payload, qos=1)
                time.sleep(0.05)

        flooder = threading.Thread(target=flood)
        flooder.start()
        for _ in range(20):
            west.journal(EventType.DECISION, granted=True, reason="ok")
            west.bridge.notify()
            time.sleep(0.02)
        wait_for(lambda: west.cache.backlog() == 0, 15, "west's events acked during the flood")
        flooder.join()
    expected = rounds * len(HOSTILE)
    wait_for(lambda: sum(new_rejects(central.ingest, before).values()) >= expected, 10, "all")
    attacker.loop_stop()
    assert new_rejects(central.ingest, before) == {"invalid_payload": expected}
    assert central.ingest.counts["store_failures"] == 0
    assert len(stored(central.url, SITE, "west")) == 20
    assert stored(central.url, SITE, "east") == []


def test_a_message_whose_storage_fails_is_rejected_and_the_rest_stored(
    workdir: Path, live_broker: Mosquitto
) -> None:
    """A message that passes validation but fails in the database (here: a trigger refuses it)
    shares a transaction with other gates' messages; only it is lost."""
    with running_central(workdir, {"url": live_broker.url}, batch_wait_ms=400) as central:
        with central.engine.begin() as conn:
            conn.execute(text(
                "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.reason = 'poison'"
                " BEGIN SELECT RAISE(ABORT, 'poisoned event'); END"
            ))  # fmt: skip
        acks: list[tuple[str, dict[str, Any]]] = []
        client = raw_client(live_broker.port)
        client.on_message = lambda c, u, m: acks.append((m.topic, json.loads(m.payload)))
        client.subscribe(topics.gate_topic(SITE, "west", GateTopic.ACK), qos=1)
        time.sleep(0.3)
        for payload in (
            batch("east", event(epoch=3, seq=1)),
            batch("west", event(epoch=3, seq=1), event(epoch=3, seq=2)),
            batch("east", event(epoch=3, seq=2, reason="poison")),
            batch("west", event(epoch=3, seq=3)),
        ):
            gate = json.loads(payload)["gate"]
            client.publish(events_topic(gate), payload, qos=1)
        wait_for(lambda: central.ingest.rejects["store_error"] == 1, 10, "the poisoned message")
        wait_for(lambda: any(a["seq"] == 3 for _, a in acks), 5, "west acked through seq 3")
        client.loop_stop()
        assert [s for _, s, *_ in stored(central.url, SITE, "west")] == [1, 2, 3]
        assert [s for _, s, *_ in stored(central.url, SITE, "east")] == [1]
        assert central.ingest.counts["store_bisections"] >= 1
        assert central.ingest.counts["store_failures"] == 0


def _central_heartbeats(port: int) -> tuple[Any, list[float]]:
    beats: list[float] = []
    watcher = raw_client(port)
    watcher.on_message = lambda c, u, m: None if m.retain else beats.append(time.monotonic())
    watcher.subscribe(topics.central_status_topic(), qos=1)
    return watcher, beats


def _missing(central: Central, gate: str) -> list[tuple[int, int]]:
    return [
        (a["details"]["first_seq"], a["details"]["last_seq"])
        for a in central.alerts("missing_events")
        if a["gate"] == gate
    ]


def test_a_seq_far_ahead_is_one_hole_not_a_walk_and_survives_a_restart(
    workdir: Path, live_broker: Mosquitto
) -> None:
    """seq 2^53-1 after seq 3: the hole 4..2^53-2 is replayed, then declared missing in one
    step, while central's heartbeat goes on; a restart in the middle recovers by itself."""
    watcher, beats = _central_heartbeats(live_broker.port)
    client = raw_client(live_broker.port)
    with running_central(workdir, {"url": live_broker.url}) as central:
        for payload in (
            batch("west", event(epoch=5, seq=1), event(epoch=5, seq=2), event(epoch=5, seq=3)),
            batch("west", event(epoch=5, seq=MAX_INT)),
        ):
            client.publish(events_topic("west"), payload, qos=1)
        wait_for(lambda: _missing(central, "west"), 20, "the hole declared missing")
        assert _missing(central, "west") == [(4, MAX_INT - 1)]
        started = time.monotonic()
        time.sleep(2.5)
        assert len([b for b in beats if b > started]) >= 2  # status_interval_s is 1 s
        client.publish(events_topic("east"), batch("east", event(epoch=6, seq=1)), qos=1)
        client.publish(events_topic("east"), batch("east", event(epoch=6, seq=MAX_INT)), qos=1)
        wait_for(lambda: len(stored(central.url, SITE, "east")) == 2, 5, "east's two events")
    with running_central(workdir, {"url": live_broker.url}) as central:
        wait_for(lambda: _missing(central, "east"), 20, "the hole found again after a restart")
        assert _missing(central, "east") == [(2, MAX_INT - 1)]
        started = time.monotonic()
        time.sleep(2.5)
        assert len([b for b in beats if b > started]) >= 2
    client.loop_stop()
    watcher.loop_stop()


def _upload(name: str, jpeg: bytes, seq: int = 1) -> str:
    b64 = base64.b64encode(jpeg).decode()
    return json.dumps({"v": 1, "name": name, "epoch": 1, "seq": seq, "jpeg_b64": b64})


def test_snapshots_need_a_stored_event_naming_them_and_a_bounded_size(
    central: Central, live_broker: Mosquitto
) -> None:
    client = raw_client(live_broker.port)
    snap = topics.gate_topic(SITE, "east", GateTopic.SNAPSHOT)
    client.publish(events_topic("east"), batch("east", event(snapshot="named.jpg")), qos=1)
    wait_for(lambda: stored(central.url, SITE, "east"), 5, "the event naming named.jpg")
    before = central.ingest.rejects.copy()
    jpeg = b"\xff\xd8" + bytes(1000) + b"\xff\xd9"
    huge = b"\xff\xd8" + bytes(MAX_SNAPSHOT_BYTES)
    for payload in (
        _upload("unnamed.jpg", jpeg),  # no event names it
        _upload("named.jpg", jpeg, seq=2),  # named, but by another event than it claims
        _upload("named.jpg", huge),  # named, too big
        _upload("named.jpg", jpeg),  # named: stored
    ):
        client.publish(snap, payload, qos=1)

    def names() -> list[str]:
        with central.engine.connect() as conn:
            return list(conn.execute(select(snapshots.c.name)).scalars())

    wait_for(lambda: names() == ["named.jpg"], 5, "the named snapshot stored")
    wait_for(lambda: sum(new_rejects(central.ingest, before).values()) == 3, 5, "rejections")
    client.loop_stop()
    assert new_rejects(central.ingest, before) == {
        "unreferenced_snapshot": 2,
        "oversized_snapshot": 1,
    }
    assert SnapshotUpload.model_fields["jpeg_b64"].metadata  # the bound is in the contract


def _hold_write_lock(db: Path, seconds: float) -> threading.Thread:
    def hold() -> None:
        conn = sqlite3.connect(db, timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        conn.rollback()
        conn.close()

    t = threading.Thread(target=hold)
    t.start()
    return t


def _sample(stop: threading.Event, value: Callable[[], int], into: list[int]) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            into.append(value())
            time.sleep(0.005)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_a_burst_beyond_the_queue_holds_the_reader_and_loses_nothing_acked(
    workdir: Path, live_broker: Mosquitto
) -> None:
    """While storage is stuck, the ingest queue stays at its bound; what did not fit is shed,
    counted and never acked, so a real gate's journal sends it again and nothing is lost."""
    limits = {"queue_max_messages": 4, "queue_block_s": 0.3, "batch_messages": 2}
    cfg = MqttSection(url=live_broker.url, resend_after_s=1.0, batch_size=5, window=8)
    with (
        running_central(workdir, {"url": live_broker.url}, **limits) as central,
        running_gate(workdir, cfg, "east") as east,
    ):
        depths: list[int] = []
        stop = threading.Event()
        sampler = _sample(stop, lambda: len(central.ingest.inbox), depths)
        locker = _hold_write_lock(workdir / "central.db", 3.0)
        time.sleep(0.2)
        client = raw_client(live_broker.port)
        for seq in range(1, 51):
            client.publish(events_topic("west"), batch("west", event(seq=seq)), qos=1)
        for _ in range(60):
            east.journal(EventType.DECISION, granted=True, reason="ok")
        east.bridge.notify()
        locker.join()
        wait_for(lambda: east.cache.backlog() == 0, 20, "every east entry acked")
        stop.set()
        sampler.join()
        client.loop_stop()
        shed = central.ingest.rejects["shed"]
        assert max(depths) <= 4
        assert shed > 0
        assert len(stored(central.url, SITE, "east")) == 60
        assert len(stored(central.url, SITE, "west")) + shed >= 50


@pytest.mark.allow_logged_exceptions
def test_a_raising_callback_is_counted_and_ingest_carries_on(
    workdir: Path, live_broker: Mosquitto
) -> None:
    with running_central(workdir, {"url": live_broker.url}) as central:
        ingest = central.ingest
        real_put, real_status = ingest.inbox.put, ingest.publish_central_status
        raised: list[str] = []

        def put_once(item: Any, block_s: float) -> bool:
            if not raised and item.topic == events_topic("west"):  # not a retained status
                raised.append("on_message")
                raise RuntimeError("injected on_message failure")
            return real_put(item, block_s)

        def status_once() -> None:
            in_paho = threading.current_thread().name.startswith("paho-mqtt-client")
            if in_paho and len(raised) == 1:  # in on_connect, not the housekeeping heartbeat
                raised.append("on_connect")
                raise RuntimeError("injected on_connect failure")
            real_status()

        ingest.inbox.put = put_once  # type: ignore[method-assign]
        ingest.publish_central_status = status_once  # type: ignore[method-assign]
        client = raw_client(live_broker.port)
        client.publish(events_topic("west"), batch("west", event(seq=1)), qos=1)
        wait_for(lambda: raised == ["on_message"], 5, "the injected on_message failure")
        client.publish(events_topic("west"), batch("west", event(seq=2)), qos=1)
        wait_for(lambda: len(stored(central.url, SITE, "west")) == 1, 5, "the next message")
        client.loop_stop()
        live_broker.kill()
        live_broker.start()
        wait_for(lambda: raised == ["on_message", "on_connect"], 15, "a reconnect that raises")
        wait_for(ingest.connected.is_set, 5, "connected again")
        client = raw_client(live_broker.port)
        time.sleep(0.3)
        client.publish(events_topic("west"), batch("west", event(seq=3)), qos=1)
        wait_for(lambda: len(stored(central.url, SITE, "west")) == 2, 10, "delivery after it")
        client.loop_stop()
        assert ingest.counts["callback_errors"] == 2


def test_a_live_stream_that_falls_behind_sheds_events_but_never_alerts(
    central: Central, live_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if the broker were far behind: stored events leave the live stream (counted), the
    alert they raise does not."""
    monkeypatch.setattr("central.ingest.fanout.LIVE_PENDING_MAX", 0)
    kinds: list[str] = []
    client = raw_client(live_broker.port)
    client.on_message = lambda c, u, m: kinds.extend(
        i["kind"] for i in json.loads(m.payload)["items"]
    )
    client.subscribe(topics.central_live_topic(), qos=1)
    time.sleep(0.3)
    forced = event(type="door_forced")
    client.publish(events_topic("east"), batch("east", forced, event(seq=2)), qos=1)
    wait_for(lambda: "alert" in kinds, 5, "the door_forced alert on the live stream")
    time.sleep(0.3)
    client.loop_stop()
    assert "event" not in kinds
    assert central.ingest.counts["live_shed"] == 2
    assert len(stored(central.url, SITE, "east")) == 2
