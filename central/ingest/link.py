"""One replica's MQTT connection: connect, subscribe, and check what the broker granted.

A broker may refuse a subscription (an ACL, or NATS failing to make a JetStream consumer in a
connect burst) and say so only in the SUBACK. Every SUBACK is checked; a refused filter is asked
for again with backoff, and until the events filter is granted this replica is not ready.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from central.config import MqttSection
from central.mqtt_client import AUTH_FAILURES, make_client
from protocol.transport import Endpoints, guard_callback

log = logging.getLogger(__name__)
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
FAILOVER_JITTER_S = 2.0


@dataclass
class Subscription:
    """One filter and what the broker last said about it."""

    topic: str
    granted: bool = False
    refusals: int = 0  # since it was last granted
    retry_at: float = 0.0  # monotonic; 0: not waiting to retry


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
        self.subs = {topic: Subscription(topic) for topic in filters}
        self._pending: dict[int, list[str]] = {}  # SUBSCRIBE mid -> its filters, in order
        self._lock = threading.Lock()
        self._stopping = False
        # so replicas (and gates) that lost one node do not all move to the next at once
        self.endpoints = Endpoints(cfg.endpoints(), jitter_s=FAILOVER_JITTER_S)
        self.client, self.host, self.port = make_client(cfg, "ingest")
        self.qos: int = cfg.qos
        self.client.will_set(will[0], will[1], qos=self.qos, retain=True)
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
        with self._lock:
            sub = self.subs.get(topic)
        return self.connected.is_set() and sub is not None and sub.granted

    def all_granted(self, suffix: str) -> bool:
        """Connected, and every filter ending in `suffix` granted."""
        with self._lock:
            subs = [s for s in self.subs.values() if s.topic.endswith(suffix)]
        return self.connected.is_set() and all(s.granted for s in subs)

    def want(self, filters: list[str]) -> None:
        """Make these the subscriptions: ask for the new ones, drop the ones not listed."""
        with self._lock:
            new = [t for t in filters if t not in self.subs]
            gone = [t for t in self.subs if t not in filters]
            for topic in new:
                self.subs[topic] = Subscription(topic)
            for topic in gone:
                del self.subs[topic]
        if gone:
            self.client.unsubscribe(gone)
        if new and self.connected.is_set():
            self._subscribe(new)

    def refused(self) -> list[str]:
        """Filters the broker refused and that are waiting to be asked for again."""
        with self._lock:
            return [s.topic for s in self.subs.values() if s.refusals and not s.granted]

    def retry_refused(self) -> None:
        """Ask again for the refused filters whose backoff has run out (call it every second)."""
        now = time.monotonic()
        with self._lock:
            due = [s.topic for s in self.subs.values() if s.retry_at and s.retry_at <= now]
            for topic in due:
                self.subs[topic].retry_at = 0.0
        if due and self.connected.is_set():
            log.info("asking the broker again for %s", due)
            self._subscribe(due)

    def _failed(self, _exc: BaseException) -> None:
        self.counts["callback_errors"] += 1  # guard_callback has logged it

    def _subscribe(self, filters: list[str]) -> None:
        with self._lock:
            result, mid = self.client.subscribe([(t, self.qos) for t in filters])
            if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                self._pending[mid] = filters
            else:  # not even sent (the connection went): on_connect subscribes again
                log.warning("subscribing to %s failed to send (%s)", filters, result)

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            if reason.value in AUTH_FAILURES:
                self.auth_failed = True
                log.critical("broker refused central's MQTT credentials (%s); not retrying", reason)
                client.disconnect()
            else:
                log.warning("MQTT connect refused: %s; retrying", reason)
            return
        with self._lock:
            self._pending.clear()
            for sub in self.subs.values():  # a new session: nothing is granted until it says so
                sub.granted, sub.retry_at = False, 0.0
        with self._lock:
            filters = list(self.subs)
        if filters:
            self._subscribe(filters)
        self.connected.set()
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
        with self._lock:
            filters = self._pending.pop(mid, [])
            for topic, code in zip(filters, codes, strict=False):
                sub = self.subs.get(topic)
                if sub is not None:  # else no longer wanted
                    self._granted_or_refused(sub, code)

    def _granted_or_refused(self, sub: Subscription, code: ReasonCode) -> None:
        if not code.is_failure:
            if sub.refusals:
                log.warning("broker granted %s after %d refusals", sub.topic, sub.refusals)
            sub.granted, sub.refusals, sub.retry_at = True, 0, 0.0
            return
        sub.granted = False
        sub.refusals += 1
        self.counts["suback_refusals"] += 1
        delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (sub.refusals - 1))
        sub.retry_at = time.monotonic() + delay
        log.error("broker refused the subscription %s (%s); asking again in %.0f s",
                  sub.topic, code, delay)  # fmt: skip

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
