"""A paho callback that raises must not end the network thread: the gate reconnects, delivers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.cache import GateCache
from edge.mqtt_bridge import MqttBridge
from edge.mqtt_settings import MqttSection
from protocol import topics
from protocol.messages import CentralStatus, EventBatch, EventType, GateState, GateStatus
from protocol.topics import GateTopic
from protocol.transport import guard_callback
from tests.integration.agent_helpers import BareGate, wait_for
from tests.integration.services import Mosquitto

SITE = "cb-site"


class InjectedBugError(RuntimeError):
    """What the injected handler raises."""


class RaisingBridge(MqttBridge):
    """The real bridge, with one paho callback that raises after doing its real work once."""

    def __init__(self, raise_in: str, *args: Any, **kwargs: Any) -> None:
        self.raise_in = raise_in
        self.raised = threading.Event()
        super().__init__(*args, **kwargs)

    def _maybe_raise(self, callback: str) -> None:
        if callback == self.raise_in and not self.raised.is_set():
            self.raised.set()
            raise InjectedBugError(f"injected bug in {callback}")

    def _on_disconnect(self, *args: Any) -> None:
        super()._on_disconnect(*args)
        self._maybe_raise("on_disconnect")

    def _on_message(self, *args: Any) -> None:
        super()._on_message(*args)
        self._maybe_raise("on_message")


class Subscriber:
    """A plain MQTT client that collects what the gate publishes."""

    def __init__(self, broker: Mosquitto, gate: str) -> None:
        self.seqs: set[int] = set()
        self.statuses: list[GateStatus] = []
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(
            [(topics.gate_topic(SITE, gate, k), 1) for k in (GateTopic.EVENTS, GateTopic.STATUS)]
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if topics.parse_topic(msg.topic).kind == GateTopic.EVENTS:
            self.seqs.update(e.seq for e in EventBatch.model_validate_json(msg.payload).events)
        else:
            self.statuses.append(GateStatus.model_validate_json(msg.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def cache(workdir: Path) -> Iterator[GateCache]:
    c = GateCache(workdir / "gate.db")
    c.begin_boot(0.0)
    yield c
    c.close()


def journal(cache: GateCache) -> int:
    return cache.journal_append(EventType.DOOR_FORCED, datetime.now(UTC))


@pytest.mark.allow_logged_exceptions
@pytest.mark.parametrize("raise_in", ["on_connect", "on_message", "on_disconnect"])
def test_raising_callback_is_survived_then_gate_reconnects_and_delivers(
    live_broker: Mosquitto, cache: GateCache, raise_in: str
) -> None:
    gate = f"g-{raise_in.replace('_', '-')}"
    cfg = MqttSection(url=live_broker.url, resend_after_s=1.0, status_interval_s=0.5)
    bare = BareGate(cache, SITE, gate)
    bridge = RaisingBridge(raise_in, cfg, cache, bare, bare)
    if raise_in == "on_connect":
        # A real hook on_connect calls: the agent's counters, asked for the first status.
        def counters() -> dict[str, int | bool]:
            bridge._maybe_raise("on_connect")
            return {}

        bare.counter_values = counters
    bridge.start()
    try:
        wait_for(lambda: bridge.connected, 10, "first connect")
        if raise_in == "on_message":  # any message for the gate will do: a live central status
            publish_central_status(live_broker)
        if raise_in != "on_disconnect":
            wait_for(bridge.raised.is_set, 10, f"{raise_in} to raise")
        live_broker.kill()
        wait_for(lambda: not bridge.connected, 10, "disconnect seen")
        wait_for(bridge.raised.is_set, 10, f"{raise_in} to raise")
        live_broker.start()
        wait_for(lambda: bridge.connected, 30, "reconnect after the broker came back")
        subscriber = Subscriber(live_broker, gate)
        try:
            seq = journal(cache)
            bridge.notify()
            wait_for(lambda: seq in subscriber.seqs, 15, "the journal entry delivered")
            wait_for(
                lambda: any(
                    s.counters.get("mqtt_callback_errors") == 1 for s in subscriber.statuses
                ),
                10,
                "the callback error counted in the gate status",
            )
        finally:
            subscriber.close()
    finally:
        bridge.close()
    assert bridge.callback_errors == 1


def publish_central_status(broker: Mosquitto) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    status = CentralStatus(state=GateState.ONLINE, at=datetime.now(UTC)).model_dump_json()
    info = client.publish(topics.central_status_topic(), status, qos=1)
    info.wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.mark.allow_logged_exceptions
def test_guard_callback_logs_counts_and_returns(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[BaseException] = []

    def handler(value: int) -> None:
        raise ValueError(value)

    guard_callback(handler, errors.append)(7)  # must not raise
    assert [str(e) for e in errors] == ["7"]
    [record] = [r for r in caplog.records if r.exc_info]
    assert "handler" in record.getMessage()


@pytest.mark.allow_logged_exceptions
def test_guard_survives_a_raising_error_hook() -> None:
    def hook(_exc: BaseException) -> None:
        raise RuntimeError("the counter itself is broken")

    guard_callback(lambda: 1 / 0, hook)()
