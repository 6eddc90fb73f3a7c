"""The gate's link on real brokers: a refused subscription is retried, a dead node is left."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from central import broker_users
from edge.mqtt_settings import MqttSection
from protocol import topics
from protocol.messages import EventType
from protocol.topics import GateTopic
from tests.integration.agent_helpers import wait_for
from tests.integration.ingest_helpers import SITE, running_central, running_gate
from tests.integration.nats_cluster import NatsCluster
from tests.integration.services import Mosquitto
from tests.integration.stack import journalled, stored


@pytest.fixture
def nats_node(tmp_path: Path) -> Iterator[NatsCluster]:
    """One NATS node (MQTT + JetStream) with central's user and one gate's."""
    node = NatsCluster(tmp_path, {"central": "central-pw", GATE_USER: "gate-pw"}, size=1)
    yield node  # not started: a test sets permissions first
    node.stop()


GATE_USER = broker_users.gate_username(SITE, "east")


def test_refused_ack_subscription_is_reported_and_retried_until_granted(
    tmp_path: Path, nats_node: NatsCluster
) -> None:
    """NATS refuses a denied filter with SUBACK 0x80 (Mosquitto 2.0 grants it and drops the
    messages, so there the refusal is invisible); the gate holds its journal until it is granted.

    The fix is a node restart, as NATS 2.9.10 hangs on a live reload (see nats_cluster.py).
    """
    ack_subject = topics.gate_topic(SITE, "east", GateTopic.ACK).replace("/", ".")
    nats_node.deny_subscribe(GATE_USER, [ack_subject])
    nats_node.start()
    url = nats_node.urls[0]
    cmqtt = {"url": url, "username": "central", "password": "central-pw",
             "shared_subscriptions": False}  # fmt: skip
    cfg = MqttSection(url=url, username=GATE_USER, password="gate-pw", resend_after_s=1.0)
    with running_central(tmp_path, cmqtt), running_gate(tmp_path, cfg) as gate:
        for _ in range(20):
            gate.journal(EventType.DECISION, granted=True, reason="ok")
        bridge = gate.bridge
        wait_for(lambda: bridge.subs.refused_total >= 2, 15, "the refusal to be retried")
        assert bridge.own_counters()["subscriptions_ok"] is False
        assert gate.cache.backlog() == 20  # held: central's acks would have nowhere to go
        nats_node.deny_subscribe(GATE_USER, [])
        nats_node.nodes[0].restart()
        nats_node.wait_ready()
        wait_for(lambda: gate.cache.backlog() == 0, 60, "the journal acked after the fix")
        assert bridge.own_counters()["subscriptions_ok"] is True
        db = f"sqlite:///{tmp_path / 'central.db'}"
        assert stored(db, SITE, "east") == journalled(tmp_path / "east.db")


def test_gate_fails_over_to_the_next_broker_and_delivers(tmp_path: Path) -> None:
    """Two brokers with a central ingest on each (one database); the gate's one dies."""
    first, second = Mosquitto(tmp_path), Mosquitto(tmp_path)
    first.start()
    second.start()
    try:
        cfg = MqttSection(urls=[first.url, second.url], failover_jitter_s=0.5, resend_after_s=1.0)
        with (
            running_central(tmp_path, {"url": first.url, "client_id": "c1"}),
            running_central(tmp_path, {"url": second.url, "client_id": "c2"}),
            running_gate(tmp_path, cfg) as gate,
        ):
            gate.journal(EventType.DECISION, granted=True, reason="ok")
            wait_for(lambda: gate.cache.backlog() == 0, 20, "the first entry acked")
            first.kill()
            for _ in range(50):
                gate.journal(EventType.DECISION, granted=True, reason="ok")
            wait_for(lambda: gate.cache.backlog() == 0, 60, "the journal acked via the other")
            assert gate.bridge.endpoints.failovers >= 1
            assert gate.bridge.endpoints.current[1] == second.port
            db = f"sqlite:///{tmp_path / 'central.db'}"
            assert stored(db, SITE, "east") == journalled(tmp_path / "east.db")
    finally:
        first.stop()
        second.stop()
