"""Live fan-out: what one replica stored goes to every replica's stream clients, via the broker."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from typing import Protocol

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from central.ingest.link import BrokerLink
from protocol import topics
from protocol.messages import LiveBatch, LiveMessage

log = logging.getLogger(__name__)
LIVE_SLICE = 200  # items per LiveBatch: ~120 kB of events
LIVE_PENDING_MAX = 32  # live batches waiting for their PUBACK: ~6,400 events, a few MB
LIVE_PENDING_S = 30.0  # an older one is given up on (lost with a connection)


class LiveSink(Protocol):
    """This replica's stream clients (central.live.LiveHub)."""

    @property
    def clients(self) -> int: ...

    def dispatch(self, item: LiveMessage) -> None: ...


class LiveFanout:
    """Publishes live batches (bounded) and hands the ones heard to this replica's hub."""

    def __init__(self, link: BrokerLink, counts: Counter[str], rejects: Counter[str]) -> None:
        self.link = link
        self.counts = counts
        self.rejects = rejects
        self.sink: LiveSink | None = None
        self._pending: deque[tuple[float, mqtt.MQTTMessageInfo]] = deque()

    def notify(self, live: list[LiveMessage], sheddable: bool = False) -> None:
        """Publish to every replica's stream clients (this one's included, via the broker).

        Stored events are `sheddable`: while LIVE_PENDING_MAX live batches wait for the broker
        (paho's out-queue has no bound, and in a burst the store loop outruns it), they are
        dropped from the live stream and counted; they are stored, and the API has them.
        Alerts and status changes always go.
        """
        now = time.monotonic()
        pending = self._pending
        while pending and (_done(pending[0][1]) or now - pending[0][0] > LIVE_PENDING_S):
            pending.popleft()
        if sheddable and live and len(pending) >= LIVE_PENDING_MAX:
            self.counts["live_shed"] += len(live)
            return
        # In slices, so that a big transaction's batch stays far below the broker's size limit.
        for start in range(0, len(live), LIVE_SLICE):
            batch = LiveBatch(items=live[start : start + LIVE_SLICE])
            info = self.link.publish(topics.central_live_topic(), batch.model_dump_json())
            pending.append((now, info))

    def heard(self, payload: bytes) -> None:
        # Nobody watching on this replica: not even parsed (17 us an event, a profile found).
        # A client that connects later replays from the store what it missed.
        sink = self.sink
        if sink is None or not sink.clients:
            return
        try:
            for item in LiveBatch.model_validate_json(payload).items:
                sink.dispatch(item)
        except ValidationError:
            self.rejects["invalid_live"] += 1
        except Exception:
            log.exception("live dispatch failed")


def _done(info: mqtt.MQTTMessageInfo) -> bool:
    """Published, or never will be: paho raises instead of answering while disconnected (the
    message is dropped with the connection; the stream's clients resume from the store)."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return True
