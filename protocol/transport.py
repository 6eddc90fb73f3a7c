"""The MQTT client both sides build: paho v2 API, MQTT 3.1.1, TLS, no Nagle; nothing connects.

Also what both sides (gate bridge and central replica) keep about their link: `Endpoints`, the
broker URLs to fail over along; `Subscriptions`, what each SUBACK granted and when to ask again;
`connect_refused`, what a failed CONNACK means.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

P = ParamSpec("P")
log = logging.getLogger(__name__)

AUTH_FAILURES = frozenset({134, 135})  # CONNACK: bad user name or password; not authorized
SUBACK_FAILURE = 0x80  # MQTT 3.1.1 SUBACK "failure"; MQTT 5 codes >= 0x80 are failures too
Subscription = tuple[str, int]  # topic filter, QoS


def make_client(
    url: str,
    client_id: str,
    *,
    username: str = "",
    password: str = "",
    ca_file: str = "",
    max_delay: int = 30,
) -> tuple[mqtt.Client, str, int]:
    """A configured, unconnected client for mqtt:// or mqtts:// URLs; returns host and port."""
    parsed = urlparse(url)
    tls = parsed.scheme == "mqtts"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if username:
        client.username_pw_set(username, password or None)
    if tls:
        client.tls_set(ca_certs=ca_file or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=1, max_delay=max_delay)
    client.on_socket_open = guard_callback(no_delay)
    return client, parsed.hostname or "localhost", parsed.port or (8883 if tls else 1883)


def no_delay(_client: object, _userdata: object, sock: object) -> None:
    """paho `on_socket_open`: send small MQTT packets at once instead of waiting for Nagle.

    Without it a single event waited about 70 ms for delayed ACKs in a measurement here.
    """
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is not None:
        with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
            setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def guard_callback(
    callback: Callable[P, object], on_error: Callable[[BaseException], None] | None = None
) -> Callable[P, None]:
    """Wrap a paho callback so an exception is logged and reported instead of raised.

    paho re-raises what a callback raises and its network thread then ends: no more
    reconnects, no error anyone sees. on_error (e.g. a counter) hears of each one.
    """
    name = getattr(callback, "__qualname__", repr(callback))

    @functools.wraps(callback)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception as exc:
            log.exception("MQTT callback %s failed; the client carries on", name)
            if on_error is None:
                return
            try:
                on_error(exc)
            except Exception:
                log.exception("error hook of MQTT callback %s failed", name)

    return guarded


@dataclass
class Endpoints:
    """The broker URLs of one client, in the order it prefers them, and where it is now."""

    urls: list[str]
    jitter_s: float = 2.0
    rng: Callable[[], float] = random.random
    index: int = 0
    failovers: int = 0

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("no broker URL")

    @property
    def current(self) -> tuple[str, int]:
        parsed = urlparse(self.urls[self.index])
        tls = parsed.scheme == "mqtts"
        return parsed.hostname or "localhost", parsed.port or (8883 if tls else 1883)

    def advance(self) -> tuple[str, int]:
        """Move to the next URL (a lost or refused link); the same one when there is only one."""
        if len(self.urls) > 1:
            self.index = (self.index + 1) % len(self.urls)
            self.failovers += 1
        return self.current

    def pause_s(self) -> float:
        """How long to hold before the next attempt, on top of paho's own backoff."""
        return self.rng() * self.jitter_s


def connect_refused(client: mqtt.Client, reason: ReasonCode, whose: str, fix: str = "") -> bool:
    """After a failed CONNACK: bad credentials (True) stop the client and say so loudly.

    No retry can fix a refused login, so the client is disconnected for good; any other refusal
    (False) is logged and paho retries with its backoff.
    """
    if reason.value in AUTH_FAILURES:
        log.critical("MQTT broker %s:%s refused %s credentials (%s); not retrying.%s",
                     client.host, client.port, whose, reason, f" {fix}" if fix else "")  # fmt: skip
        client.disconnect()
        return True
    log.warning("MQTT connect refused: %s; retrying with backoff", reason)
    return False


def jittered(base_s: float, attempt: int, max_s: float, rng: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: a fleet that lost one node does not retry in step."""
    return rng() * min(max_s, base_s * 2.0 ** min(attempt, 16))


@dataclass
class Subscriptions:
    """What a client asked for, what the broker granted, and when to ask again for the rest.

    A broker may refuse one filter of a SUBSCRIBE (an ACL, or NATS failing to make a JetStream
    consumer in a connect burst) and still keep the connection: without this a gate's ack
    subscription, or central's events filter, can be missing for good while the link looks up.
    A plain state machine (no sockets, no threads of its own), so the rules can be tested apart
    from paho.
    """

    wanted: list[Subscription]
    base_s: float = 1.0
    max_s: float = 30.0
    answer_within_s: float = 10.0
    rng: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic
    refused_total: int = 0  # SUBACK refusals and SUBSCRIBEs never answered, since start
    # The network thread records SUBACKs while another thread asks for retries.
    lock: threading.RLock = field(default_factory=threading.RLock)
    granted: set[str] = field(default_factory=set)
    _pending: dict[int, tuple[float, list[Subscription]]] = field(default_factory=dict)
    _early: dict[int, list[int]] = field(default_factory=dict)  # SUBACK read before sent()
    _retry_at: dict[str, float] = field(default_factory=dict)
    _attempts: dict[str, int] = field(default_factory=dict)  # refusals since last granted

    @property
    def ok(self) -> bool:
        with self.lock:
            return all(topic in self.granted for topic, _ in self.wanted)

    def holds(self, topic: str) -> bool:
        with self.lock:
            return topic in self.granted

    def refused(self) -> list[str]:
        """Wanted filters refused (or left unanswered) since they were last granted."""
        with self.lock:
            return [t for t, _ in self.wanted if self._attempts.get(t) and t not in self.granted]

    def want(self, wanted: list[Subscription]) -> tuple[list[Subscription], list[str]]:
        """Make these the subscriptions; returns the ones to subscribe and the ones to drop."""
        with self.lock:
            had = {topic for topic, _ in self.wanted}
            keep = {topic for topic, _ in wanted}
            new = [(topic, qos) for topic, qos in wanted if topic not in had]
            gone = [topic for topic in had if topic not in keep]
            self.wanted = list(wanted)
            for topic in gone:
                self.granted.discard(topic)
                self._retry_at.pop(topic, None)
                self._attempts.pop(topic, None)
            return new, gone

    def connected(self) -> list[Subscription]:
        """A new session holds nothing: ask for everything now."""
        with self.lock:
            self.granted.clear()
            self._pending.clear()
            self._early.clear()
            self._retry_at.clear()
            self._attempts.clear()
            return list(self.wanted)

    def sent(self, mid: int, subs: list[Subscription]) -> list[str]:
        """Record a SUBSCRIBE paho queued; returns refusals if its SUBACK was already read.

        (paho's network thread can read the SUBACK before subscribe() returns to the sender
        thread. The caller must not hold a lock across subscribe(): paho takes its callback
        lock inside it, and holds that lock while it runs on_subscribe.)
        """
        with self.lock:
            self._pending[mid] = (self.clock(), subs)
            for topic, _ in subs:
                self._retry_at.pop(topic, None)
            early = self._early.pop(mid, None)
            return [] if early is None else self.answered(mid, early)

    def not_sent(self, subs: list[Subscription]) -> None:
        """paho could not even queue the SUBSCRIBE (link just dropped): try again later."""
        with self.lock:
            for topic, _ in subs:
                self._schedule(topic)

    def answered(self, mid: int, codes: list[int]) -> list[str]:
        """Record a SUBACK; returns the (still wanted) filters the broker refused."""
        with self.lock:
            if mid not in self._pending:
                self._early[mid] = codes
                return []
            _at, subs = self._pending.pop(mid)
            wanted = {topic for topic, _ in self.wanted}
            refused = []
            for (topic, _qos), code in zip(subs, codes, strict=False):
                if topic not in wanted:
                    continue  # dropped by want() while the SUBSCRIBE was in flight
                if code >= SUBACK_FAILURE:
                    refused.append(topic)
                    self._schedule(topic)
                else:
                    self.granted.add(topic)
                    self._attempts.pop(topic, None)
            self.refused_total += len(refused)
            return refused

    def due(self) -> list[Subscription]:
        """Refused (or never answered) filters whose backoff has run out."""
        with self.lock:
            now = self.clock()
            for mid, (at, subs) in list(self._pending.items()):
                if now - at > self.answer_within_s:  # no SUBACK at all: as good as refused
                    del self._pending[mid]
                    self.refused_total += len(subs)
                    for topic, _ in subs:
                        self._schedule(topic)
            ready = {t for t, at in self._retry_at.items() if at <= now}
            return [(topic, qos) for topic, qos in self.wanted if topic in ready]

    def _schedule(self, topic: str) -> None:
        attempt = self._attempts.get(topic, 0)
        self._attempts[topic] = attempt + 1
        # At least base/2, so a broker that refuses at once is not asked in a tight loop.
        delay = self.base_s / 2 + jittered(self.base_s, attempt, self.max_s, self.rng)
        self._retry_at[topic] = self.clock() + delay
