"""The bridge's link bookkeeping: which subscriptions hold (which broker to try next is
protocol/transport.py's `Endpoints`, shared with central).

It is a plain state machines (no sockets, no threads) so the jitter and the SUBACK rules can be
read, and tested, apart from paho.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Subscription = tuple[str, int]
SUBACK_FAILURE = 0x80  # MQTT 3.1.1 SUBACK "failure"; MQTT 5 codes >= 0x80 are failures too


def jittered(base_s: float, attempt: int, max_s: float, rng: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: a fleet that lost one node does not retry in step."""
    return rng() * min(max_s, base_s * 2.0 ** min(attempt, 16))


@dataclass
class Subscriptions:
    """What a client asked for, what the broker granted, and when to ask again for the rest.

    A broker may refuse one filter of a SUBSCRIBE (NATS does when it cannot create the
    JetStream consumer in time) and still keep the connection: without this a gate's ack
    subscription can be missing for good while everything else looks connected.
    """

    wanted: list[Subscription]
    base_s: float = 1.0
    max_s: float = 30.0
    answer_within_s: float = 10.0
    rng: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic
    refused_total: int = 0
    # The network thread records SUBACKs while the sender thread asks for retries.
    lock: threading.RLock = field(default_factory=threading.RLock)
    granted: set[str] = field(default_factory=set)
    _pending: dict[int, tuple[float, list[Subscription]]] = field(default_factory=dict)
    _early: dict[int, list[int]] = field(default_factory=dict)  # SUBACK read before sent()
    _retry_at: dict[str, float] = field(default_factory=dict)
    _attempts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        with self.lock:
            return all(topic in self.granted for topic, _ in self.wanted)

    def holds(self, topic: str) -> bool:
        with self.lock:
            return topic in self.granted

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
        """Record a SUBACK; returns the filters the broker refused."""
        with self.lock:
            if mid not in self._pending:
                self._early[mid] = codes
                return []
            _at, subs = self._pending.pop(mid)
            refused = []
            for (topic, _qos), code in zip(subs, codes, strict=False):
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
