"""Central ingest and the gate bridge in-process, on the private broker: validation, sync,
commands, clock, holes, presence and snapshots."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from central.store import office_store, sync_store
from central.store.tables import lost_events, snapshots
from edge.cache import GateCache
from edge.journal import GateJournal
from edge.live_policy import PolicyHolder
from edge.mqtt_settings import MqttSection
from protocol import topics
from protocol.messages import (
    Command,
    CommandAction,
    EventBatch,
    EventType,
    GateEvent,
    GateState,
    GateStatus,
)
from protocol.topics import GateTopic
from tests.integration.agent_helpers import bare_bridge, wait_for
from tests.integration.ingest_helpers import (
    SITE,
    Central,
    Gate,
    raw_client,
    running_central,
    running_gate,
)
from tests.integration.services import Mosquitto
from tests.integration.stack import stored


@pytest.fixture
def central(workdir: Path, live_broker: Mosquitto) -> Iterator[Central]:
    with running_central(workdir, {"url": live_broker.url}) as c:
        yield c


@pytest.fixture
def gate(workdir: Path, live_broker: Mosquitto, central: Central) -> Iterator[Gate]:
    cfg = MqttSection(url=live_broker.url, resend_after_s=1.0, status_interval_s=1.0)
    with running_gate(workdir, cfg) as g:
        yield g


def test_bad_publishes_are_rejected_counted_and_ingest_carries_on(
    central: Central, gate: Gate, live_broker: Mosquitto
) -> None:
    client = raw_client(live_broker.port)
    east = topics.gate_topic(SITE, "east", GateTopic.EVENTS)
    event = GateEvent(epoch=1, seq=1, at=datetime.now(UTC), type=EventType.DECISION)
    spoof = EventBatch(site=SITE, gate="west", events=[event]).model_dump_json()
    unknown = EventBatch(site=SITE, gate="ghost", events=[event]).model_dump_json()
    sends = [
        (east, b"\x00\xffnot json"),
        (east, b'{"v": 1, "site": "x"}'),
        (east, json.dumps({"v": 1, "site": SITE, "gate": "east", "events": [], "extra": 1})),
        (east, b"{" + b" " * 600_000 + b"}"),
        (east, spoof),  # a west batch on east's topic
        (topics.gate_topic(SITE, "ghost", GateTopic.EVENTS), unknown),
    ]
    time.sleep(0.5)  # retained statuses of other tests' gates arrive first, as unknown gates
    before = central.ingest.rejects.copy()
    for topic, payload in sends:
        client.publish(topic, payload, qos=1).wait_for_publish(5)

    def rejected() -> dict[str, int]:
        return {
            k: v - before.get(k, 0)
            for k, v in central.ingest.rejects.items()
            if v - before.get(k, 0)
        }

    wait_for(lambda: sum(rejected().values()) >= len(sends), 10, "rejections")
    assert rejected() == {
        "invalid_payload": 3,
        "oversized": 1,
        "spoofed_topic": 1,
        "unknown_gate": 1,
    }
    client.loop_stop()
    gate.journal(EventType.DECISION, granted=True, reason="ok")
    gate.bridge.notify()
    wait_for(lambda: gate.cache.backlog() == 0, 10, "the real event to be acked")
    assert len(stored(central.url, SITE, "west")) == 0
    east = stored(central.url, SITE, "east")
    assert len(east) == 1, east


def test_revocation_reaches_the_gate_and_unrevocation_too(central: Central, gate: Gate) -> None:
    pid = "0123456789abcdef"
    with central.engine.begin() as conn:
        version = sync_store.revoke(conn, pid, "lost phone", datetime.now(UTC), until=2_000_000_000)
    started = time.monotonic()
    central.ingest.announce(SITE, version)
    wait_for(lambda: gate.cache.is_revoked(pid), 2.0, "revocation at the gate")
    assert time.monotonic() - started < 2.0
    assert gate.cache.cache_version == version
    with central.engine.begin() as conn:
        version = sync_store.unrevoke(conn, pid) or 0
    central.ingest.announce(SITE, version)
    wait_for(lambda: not gate.cache.is_revoked(pid), 2.0, "unrevocation at the gate")


def test_gate_reports_an_applied_revocation_at_once(
    workdir: Path, live_broker: Mosquitto, central: Central
) -> None:
    cache = GateCache(workdir / "west.db")
    cfg = MqttSection(url=live_broker.url, status_interval_s=600.0)  # no periodic status
    bridge, _ = bare_bridge(cfg, cache, SITE, "west", snapshot_path=lambda name: workdir / name)
    bridge.start()
    try:
        wait_for(lambda: bridge.connected, 10, "gate connected")
        with central.engine.begin() as conn:
            version = sync_store.revoke(conn, "00000000000000aa", "lost card", datetime.now(UTC))
        central.ingest.announce(SITE, version)

        def reported() -> int:
            with central.engine.connect() as conn:
                rows = office_store.site_gates(conn, SITE)
            status = next(r.status for r in rows if r.gate == "west") or {}
            return int(status.get("cache_version") or 0)

        wait_for(lambda: reported() >= version, 2.0, "the gate's status after applying")
    finally:
        bridge.close()
        cache.close()


def test_a_new_gate_gets_a_snapshot_on_connect(
    workdir: Path, live_broker: Mosquitto, central: Central
) -> None:
    with central.engine.begin() as conn:
        for i in range(5):
            sync_store.revoke(conn, f"{i:016x}", "", datetime.now(UTC))
    cache = GateCache(workdir / "west.db")
    cache.revoke("ffffffffffffffff", "local", source="local")
    bridge, _ = bare_bridge(MqttSection(url=live_broker.url), cache, SITE, "west")
    bridge.start()
    try:
        wait_for(lambda: cache.revoked_count() == 6, 5, "snapshot applied")
        assert cache.is_revoked("ffffffffffffffff")  # a guard's local revocation survives
    finally:
        bridge.close()
        cache.close()


def _command(gate: Gate, live_broker: Mosquitto, cmd: Command) -> None:
    client = raw_client(live_broker.port)
    topic = topics.gate_topic(SITE, "east", GateTopic.CMD)
    client.publish(topic, cmd.model_dump_json(), qos=1).wait_for_publish(5)
    client.loop_stop()


def test_remote_open_runs_at_most_once_and_never_after_expiry(
    gate: Gate, live_broker: Mosquitto
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=30)
    cmd = Command(id="c-1", action=CommandAction.OPEN, expires_at=soon, issued_by="guard1")
    _command(gate, live_broker, cmd)
    _command(gate, live_broker, cmd)  # a duplicate delivery
    late = Command(id="c-2", action=CommandAction.OPEN, expires_at=datetime.now(UTC))
    _command(gate, live_broker, late)
    wait_for(lambda: gate.cache.command_result("c-2") is not None, 5, "expired command seen")

    def remote_opens() -> list[GateEvent]:
        return [e for e in gate.cache.journal_unacked(limit=1000) + _acked(gate)
                if e.type is EventType.REMOTE_OPEN]  # fmt: skip

    wait_for(lambda: len(remote_opens()) == 2, 5, "two remote_open entries")
    time.sleep(0.5)
    assert len(gate.opened) == 1
    results = {str(e.details["command_id"]): (e.granted, e.reason) for e in remote_opens()}
    assert results == {"c-1": (True, "ok"), "c-2": (False, "expired")}


def _acked(gate: Gate) -> list[GateEvent]:
    rows = gate.cache.db.execute("SELECT seq FROM journal WHERE acked = 1").fetchall()
    return [e for (seq,) in rows if (e := gate.cache.journal_entry(seq)) is not None]


def test_gate_measures_clock_skew_from_live_central_status(gate: Gate) -> None:
    wait_for(lambda: gate.bridge.clock_skew_s is not None, 5, "a live central status")
    assert abs(gate.bridge.clock_skew_s or 99) < 1.0
    # What the gate's journal records on every entry, from the link state the bridge keeps.
    journal = GateJournal(gate.cache, PolicyHolder(gate.bare.ctx), gate.bridge.link)
    assert "clock_skew_s" in journal.context()


def test_dropped_entries_are_recorded_lost_with_an_alert(central: Central, gate: Gate) -> None:
    gate.bridge.stop.set()  # hold the sender first, so all six stay unacked for the prune
    time.sleep(0.3)  # the send loop sees the stop within its 0.2 s poll
    for _ in range(6):
        gate.journal(EventType.DECISION)
    gate.cache.retention = type(gate.cache.retention)(max_unacked=3)
    gate.cache.prune(on_dropped=lambda n, r: gate.journal(
        EventType.JOURNAL_DROPPED, details={"dropped": n, "ranges": r}))  # fmt: skip
    gate.bridge.stop.clear()
    threading.Thread(target=gate.bridge._send_loop, daemon=True).start()
    wait_for(lambda: gate.cache.backlog() == 0, 10, "everything left acked")
    with central.engine.connect() as conn:
        lost = conn.execute(select(lost_events)).mappings().all()
    assert [(r["first_seq"], r["last_seq"], r["cause"]) for r in lost] == [
        (1, 3, "dropped_by_gate")
    ]
    assert len(central.alerts("missing_events")) == 1


def test_hole_is_replayed_then_declared_missing(central: Central, live_broker: Mosquitto) -> None:
    acks: list[dict[str, Any]] = []
    client = raw_client(live_broker.port)
    client.on_message = lambda c, u, m: acks.append(json.loads(m.payload))
    client.subscribe(topics.gate_topic(SITE, "west", GateTopic.ACK), qos=1)
    time.sleep(0.3)
    now = datetime.now(UTC)
    batch = EventBatch(
        site=SITE, gate="west", epoch_first_seq={7: 1},
        events=[GateEvent(epoch=7, seq=s, at=now, type=EventType.DECISION)
                for s in (1, 2, 3, 6, 7)],
    )  # fmt: skip
    client.publish(topics.gate_topic(SITE, "west", GateTopic.EVENTS), batch.model_dump_json(), 1)
    wait_for(lambda: any(a.get("replay_from") == 4 for a in acks), 5, "a replay request")
    assert acks[0] == {"v": 1, "epoch": 7, "seq": 3, "replay_from": None}
    wait_for(lambda: any(a["seq"] == 7 for a in acks), 10, "giving up on 4-5")
    client.loop_stop()
    [alert] = central.alerts("missing_events")
    assert alert["details"]["first_seq"] == 4 and alert["details"]["last_seq"] == 5


def test_gate_going_offline_raises_gate_offline_after_grace(
    central: Central, live_broker: Mosquitto
) -> None:
    client = raw_client(live_broker.port)
    status = topics.gate_topic(SITE, "west", GateTopic.STATUS)
    online = GateStatus(state=GateState.ONLINE, at=datetime.now(UTC))
    client.publish(status, online.model_dump_json(), 1, retain=True).wait_for_publish(5)
    time.sleep(0.5)
    offline = GateStatus(state=GateState.OFFLINE).model_dump_json()
    client.publish(status, offline, 1, retain=True).wait_for_publish(5)
    wait_for(lambda: central.alerts("gate_offline"), 6, "gate_offline alert")
    time.sleep(1.5)
    assert len(central.alerts("gate_offline")) == 1  # one per offline spell, not one a second
    client.publish(status, b"", 1, retain=True).wait_for_publish(5)  # clear the retained status
    client.loop_stop()


def test_snapshot_goes_up_after_its_event(workdir: Path, central: Central, gate: Gate) -> None:
    snaps = workdir / "snaps"
    snaps.mkdir()
    (snaps / "20261202T010000-abcdef01.jpg").write_bytes(b"\xff\xd8fake jpeg\xff\xd9")
    gate.journal(EventType.DOOR_FORCED, snapshot="20261202T010000-abcdef01.jpg")
    gate.bridge.notify()

    def stored_jpeg() -> bytes | None:
        with central.engine.connect() as conn:
            return conn.execute(select(snapshots.c.jpeg)).scalar()

    wait_for(stored_jpeg, 10, "snapshot stored")
    assert stored_jpeg() == b"\xff\xd8fake jpeg\xff\xd9"
    assert len(central.alerts("door_forced")) == 1


def test_gate_counters_reach_central_with_its_status(central: Central, gate: Gate) -> None:
    from central.store.tables import gates

    gate.bare.counter_values = lambda: {"reader_rejected": 3, "relay_up": True}
    gate.bridge.publish_status()

    def counters() -> object:
        with central.engine.connect() as conn:
            status = conn.execute(select(gates.c.status).where(gates.c.gate == "east")).scalar()
        return (status or {}).get("counters")

    # The bridge adds its own counters to the agent's.
    want = {"reader_rejected": 3, "relay_up": True, "mqtt_rejected": 0, "mqtt_callback_errors": 0,
            "mqtt_connects": 1, "mqtt_failovers": 0, "mqtt_suback_refused": 0,
            "subscriptions_ok": True, "pass_hints_unsupported": 0}  # fmt: skip
    wait_for(lambda: counters() == want, 5, "counters")


def test_a_revocation_whose_announcement_was_lost_reaches_the_gate_by_its_refresh(
    workdir: Path, live_broker: Mosquitto
) -> None:
    # At QoS 0 (the NATS setting) an announcement central makes while its own link is down is
    # gone, and a gate whose link stayed up hears nothing; its periodic syncreq must catch up.
    mqtt = {"url": live_broker.url, "qos": 0}
    with running_central(workdir, mqtt) as central:
        cfg = MqttSection(url=live_broker.url, qos=0, status_interval_s=1.0, refresh_s=1.0)
        with running_gate(workdir, cfg) as gate:
            # The connect's own syncreq answered first, so only the refresh can bring it.
            wait_for(lambda: central.ingest.counts["sync_answers"] >= 1, 5.0, "the first sync")
            time.sleep(0.5)
            pid = "0123456789abcdef"
            with central.engine.begin() as conn:  # revoked, never announced
                version = sync_store.revoke(conn, pid, "stolen", datetime.now(UTC),
                                            until=2_000_000_000)  # fmt: skip
            wait_for(lambda: gate.cache.is_revoked(pid), 5.0, "the revocation, by the refresh")
            assert gate.cache.cache_version == version
            assert central.ingest.counts["policy_answers"] == 0  # nothing newer to send
