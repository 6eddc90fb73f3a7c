"""A gate of this release talking to a central from before pass hints: that central drops every
SyncRequest carrying `passes`, so the gate must ask again without it, within a bounded time,
and get its revocations; the next connection tries with passes again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, ConfigDict, ValidationError

from edge.cache import GateCache
from edge.mqtt_bridge import MqttBridge
from edge.mqtt_settings import MqttSection
from protocol import topics
from protocol.messages import CentralStatus, GateState, Revocation, SyncDelta
from protocol.topics import GateTopic
from tests.integration.agent_helpers import bare_bridge, wait_for
from tests.integration.services import Mosquitto

SITE = "hint-fallback"
PASS_ID = "0123456789abcdef"
REFRESH_S = 2.0  # the bound is min(30 s, refresh_s): short here, so the test is


class OldSyncRequest(BaseModel):
    """SyncRequest as central knew it before pass hints: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
    v: Literal[1] = 1
    since: int


class OldCentral:
    """A tiny stand-in for the old central: answers only the requests it can parse."""

    def __init__(self, broker: Mosquitto) -> None:
        self.asked: list[bool] = []  # per request: did it carry passes
        self.refused = 0
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        # Inside on_connect, so a broker restart re-subscribes it, as central does.
        self.client.on_connect = lambda c, *_: c.subscribe(
            f"{topics.PREFIX}/{SITE}/+/{GateTopic.SYNC_REQUEST.value}", qos=1
        )
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "no SUBACK"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.asked.append(b'"passes"' in msg.payload)
        try:
            request = OldSyncRequest.model_validate_json(msg.payload)
        except ValidationError:
            self.refused += 1  # the old central's invalid_payload: no answer at all
            return
        delta = SyncDelta(
            version=request.since + 1, snapshot=False,
            revoked=[Revocation(pass_id=PASS_ID, reason="lost phone")], unrevoked=[],
        )  # fmt: skip
        gate = topics.parse_topic(msg.topic).gate
        assert gate is not None
        self.client.publish(
            topics.gate_topic(SITE, gate, GateTopic.DELTA), delta.model_dump_json(), qos=1
        )

    def requests(self) -> list[bool]:
        with self._lock:
            return list(self.asked)

    def restarted(self) -> None:
        """What central says across a restart (its goodbye, then its first heartbeat), live as
        a gate already subscribed receives them; not retained, to leave no trace."""
        for state in (GateState.OFFLINE, GateState.ONLINE, GateState.ONLINE):
            status = CentralStatus(state=state).model_dump_json()
            self.client.publish(topics.central_status_topic(), status, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def old_central(live_broker: Mosquitto) -> Iterator[OldCentral]:
    central = OldCentral(live_broker)
    yield central
    central.close()


@pytest.fixture
def bridge(
    tmp_path: Path, live_broker: Mosquitto, request: pytest.FixtureRequest
) -> Iterator[MqttBridge]:
    cache = GateCache(tmp_path / "gate.db")
    cache.begin_boot(0.0)
    cfg = MqttSection(url=live_broker.url, refresh_s=REFRESH_S, status_interval_s=1.0)
    bridge, _ = bare_bridge(cfg, cache, SITE, request.node.name[5:45].strip("_"))
    bridge.start()
    yield bridge
    bridge.close()
    cache.close()


def test_an_old_central_still_sends_the_revocations_within_the_bound(
    old_central: OldCentral, bridge: MqttBridge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.mqtt_asks")
    wait_for(lambda: bridge.cache.is_revoked(PASS_ID), bridge.asks.answer_s + 3,
             "the revocation, asked for again without passes")  # fmt: skip
    asked = old_central.requests()
    assert asked[0] is True and asked[-1] is False
    assert old_central.refused >= 1
    assert bridge.own_counters()["pass_hints_unsupported"] == 1
    warnings = [r for r in caplog.records if r.name == "edge.mqtt_asks"]
    assert len(warnings) == 1 and "pass hints" in warnings[0].getMessage()
    # The rest of this connection asks without passes: its refreshes get answers too.
    seen = len(old_central.requests())
    wait_for(lambda: len(old_central.requests()) > seen + 1, REFRESH_S * 3, "two refreshes")
    assert not any(old_central.requests()[seen:])
    assert bridge.own_counters()["pass_hints_unsupported"] == 1


def test_the_next_connection_tries_with_passes_again(
    old_central: OldCentral, bridge: MqttBridge, live_broker: Mosquitto
) -> None:
    wait_for(lambda: bridge.cache.is_revoked(PASS_ID), bridge.asks.answer_s + 3, "the fallback")
    old_central.subscribed.clear()
    live_broker.kill()
    wait_for(lambda: not bridge.connected, 10, "the link lost")
    live_broker.start()
    wait_for(lambda: bridge.connected and old_central.subscribed.is_set(), 30, "both back")
    # Only a request asking for passes can go unanswered into a second fallback.
    wait_for(lambda: bridge.own_counters()["pass_hints_unsupported"] == 2,
             bridge.asks.answer_s + 3, "a second fallback, on the new connection")  # fmt: skip


def test_central_back_online_makes_the_gate_try_passes_again(
    old_central: OldCentral, bridge: MqttBridge
) -> None:
    wait_for(lambda: bridge.own_counters()["pass_hints_unsupported"] == 1,
             bridge.asks.answer_s + 3, "the fallback")  # fmt: skip
    old_central.restarted()  # as after central was updated
    seen = len(old_central.requests())
    wait_for(lambda: any(old_central.requests()[seen:]), REFRESH_S * 3,
             "a request with passes, at the next refresh")  # fmt: skip
    wait_for(lambda: bridge.own_counters()["pass_hints_unsupported"] == 2,
             bridge.asks.answer_s + 3, "and, central still old, a fallback again")  # fmt: skip
