"""One replica's MQTT connection: connect, subscribe, and check what the broker granted.

A broker may refuse a subscription (an ACL, or NATS failing to make a JetStream consumer in a
connect burst) and say so only in the SUBACK. Every SUBACK is checked (protocol/transport.py's
`Subscriptions`, shared with the gate); a refused filter is asked for again with backoff, and until
the events filter is granted this replica is not ready.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central.config import MqttSection
from central.mqtt_client import make_client
from protocol.transport import (
    Endpoints,
    Subscription,
    Subscriptions,
    connect_refused,
    guard_callback,
)

log = logging.getLogger(__name__)
FAILOVER_JITTER_S = 2.0
# QoS 1 publishes (acks, live batches, deltas) sent before waiting for the broker's PUBACKs.
# paho's default of 20 let central's acks out at 20 a broker round trip: at 2,000 gates x 0.5
# entries/s that is 1,000 acks/s, and the round trip is long on a busy box. The rest still
# wait in paho's out-queue, as before.
OUT_INFLIGHT = 1000


class BrokerLink:
    """The paho client, its will, its subscriptions and their SUBACKs."""

    def __init__(
        self,
        cfg: MqttSection,
        filters: list[str],
        will: tuple[str, bytes],
        counts: Counter[str],
    ) -> None:
        self.counts = counts
        self.connected = threading.Event()
        self.auth_failed = False
        self.on_message: Callable[[mqtt.MQTTMessage], None] = lambda _msg: None
        self.on_connected: Callable[[], None] = lambda: None
        self.qos: int = cfg.qos  # 0 on NATS (docs/operations.md)
        self.subs = Subscriptions([(topic, self.qos) for topic in filters])
        self._stopping = False
        # so replicas (and gates) that lost one node do not all move to the next at once
        self.endpoints = Endpoints(cfg.endpoints(), jitter_s=FAILOVER_JITTER_S)
        self.client, self.host, self.port = make_client(cfg, "ingest")
        self.client.will_set(will[0], will[1], qos=self.qos, retain=True)
        self.client.max_inflight_messages_set(OUT_INFLIGHT)
        for name in (
            "on_connect",
            "on_message",
            "on_disconnect",
            "on_subscribe",
            "on_connect_fail",
        ):
            setattr(self.client, name, guard_callback(getattr(self, f"_{name}"), self._failed))

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def close(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def publish(
        self, topic: str, payload: str | bytes, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=self.qos, retain=retain)

    def granted(self, topic: str) -> bool:
        return self.connected.is_set() and self.subs.holds(topic)

    def all_granted(self, suffix: str) -> bool:
        """Connected, and every filter ending in `suffix` granted."""
        with self.subs.lock:
            topics = [topic for topic, _ in self.subs.wanted if topic.endswith(suffix)]
            held = all(self.subs.holds(topic) for topic in topics)
        return self.connected.is_set() and held

    def want(self, filters: list[str]) -> None:
        """Make these the subscriptions: ask for the new ones, drop the ones not listed."""
        new, gone = self.subs.want([(topic, self.qos) for topic in filters])
        if gone:
            self.client.unsubscribe(gone)
        if new and self.connected.is_set():
            self._subscribe(new)

    def refused(self) -> list[str]:
        """Filters the broker refused and that are waiting to be asked for again."""
        return self.subs.refused()

    def retry_refused(self) -> None:
        """Ask again for the refused filters whose backoff has run out (call it every second)."""
        due = self.subs.due()
        self._count_refusals()  # due() counts a SUBSCRIBE that was never answered
        if due and self.connected.is_set():
            log.info("asking the broker again for %s", [topic for topic, _ in due])
            self._subscribe(due)

    def _failed(self, _exc: BaseException) -> None:
        self.counts["callback_errors"] += 1  # guard_callback has logged it

    def _subscribe(self, subs: list[Subscription]) -> None:
        result, mid = self.client.subscribe(subs)
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._refused(self.subs.sent(mid, subs))
        else:  # not even sent (the connection went): retried with backoff, or on connect
            log.warning("subscribing to %s failed to send (%s)", subs, result)
            self.subs.not_sent(subs)

    def _refused(self, topics: list[str]) -> None:
        self._count_refusals()
        if topics:
            log.error("broker refused the subscriptions %s; asking again with backoff", topics)

    def _count_refusals(self) -> None:
        self.counts["suback_refusals"] = self.subs.refused_total

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.auth_failed = self.auth_failed or connect_refused(client, reason, "central's")
            return
        # Connected first: a filter want() adds from now on is sent by want() itself.
        self.connected.set()
        self._subscribe(self.subs.connected())
        log.info("central ingest connected to %s:%s", self.host, self.port)
        self.on_connected()

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        mid: int,
        codes: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        self._refused(self.subs.answered(mid, [code.value for code in codes]))

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.connected.clear()
        if not self._stopping:
            log.warning("central ingest disconnected (%s); reconnecting", reason)
            self._fail_over()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        self._fail_over()

    def _fail_over(self) -> None:
        """Point paho's next reconnect at the next broker URL, after a jittered pause.

        Called on paho's network thread while it is between connections, so the pause only
        delays this client's own next attempt.
        """
        if len(self.endpoints.urls) < 2 or self._stopping:
            return
        pause = self.endpoints.pause_s()
        # paho's host/port setters refuse while its loop is reconnecting (the state is "lost",
        # not "closed"), yet the loop reads these two fields for its next attempt; paho has
        # no other way to point an automatic reconnect elsewhere.
        self.client._host, self.client._port = self.endpoints.advance()
        self.host, self.port = self.client.host, self.client.port
        self.counts["failovers"] += 1
        log.warning("failing over to broker %s:%s in %.1f s", self.host, self.port, pause)
        time.sleep(pause)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.on_message(msg)
