"""Live fan-out: what one replica stored goes to every replica's stream clients, via the broker."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from typing import Protocol

import paho.mqtt.client as mqtt
from pydantic import ValidationError
from pydantic_core import to_json

from central.ingest.link import BrokerLink
from central.views import event_view
from protocol import topics
from protocol.messages import GateEvent, LiveBatch, LiveMessage

log = logging.getLogger(__name__)
LIVE_SLICE = 200  # items per LiveBatch: ~120 kB of events
LIVE_PENDING_MAX = 32  # live batches waiting for their PUBACK: ~6,400 events, a few MB
LIVE_PENDING_S = 30.0  # an older one is given up on (lost with a connection)
StoredEvent = tuple[int, str, str, GateEvent]  # id, site, gate, the event


class LiveSink(Protocol):
    """This replica's stream clients (central.live.LiveHub)."""

    @property
    def clients(self) -> int: ...

    def dispatch_all(self, items: list[LiveMessage]) -> None: ...


class LiveFanout:
    """Publishes live batches (bounded) and hands the ones heard to this replica's hub."""

    def __init__(self, link: BrokerLink, counts: Counter[str], rejects: Counter[str]) -> None:
        self.link = link
        self.counts = counts
        self.rejects = rejects
        self.sink: LiveSink | None = None
        self._pending: deque[tuple[float, mqtt.MQTTMessageInfo]] = deque()

    def notify(self, live: list[LiveMessage]) -> None:
        """Alerts and status changes to every replica's stream clients (this one's included,
        via the broker); these always go."""
        self._backed_up()  # forgets the batches the broker took
        # In slices, so that a big transaction's batch stays far below the broker's size limit.
        for start in range(0, len(live), LIVE_SLICE):
            self._publish(LiveBatch(items=live[start : start + LIVE_SLICE]).model_dump_json())

    def notify_events(self, inserted: list[StoredEvent], received_at: str) -> None:
        """A transaction's stored events, to the same streams; these may be shed.

        While LIVE_PENDING_MAX live batches wait for the broker (paho's out-queue has no
        bound, and in a burst the store loop outruns it), stored events are dropped from the
        live stream and counted; they are stored, and the API has them.
        """
        if inserted and self._backed_up():
            self.counts["live_shed"] += len(inserted)
            return
        for payload in event_batches(inserted, received_at):
            self._publish(payload)

    def _backed_up(self) -> bool:
        now = time.monotonic()
        pending = self._pending
        while pending and (_done(pending[0][1]) or now - pending[0][0] > LIVE_PENDING_S):
            pending.popleft()
        return len(pending) >= LIVE_PENDING_MAX

    def _publish(self, payload: str | bytes) -> None:
        info = self.link.publish(topics.central_live_topic(), payload)
        self._pending.append((time.monotonic(), info))

    def heard(self, payload: bytes) -> None:
        # Nobody watching on this replica: not even parsed (17 us an event, a profile found).
        # A client that connects later replays from the store what it missed.
        sink = self.sink
        if sink is None or not sink.clients:
            return
        try:
            sink.dispatch_all(LiveBatch.model_validate_json(payload).items)
        except ValidationError:
            self.rejects["invalid_live"] += 1
        except Exception:
            log.exception("live dispatch failed")


def event_batches(inserted: list[StoredEvent], received_at: str) -> list[bytes]:
    """LiveBatch JSON of stored events, LIVE_SLICE a message, built from plain dicts.

    The bytes LiveBatch(items=[LiveMessage(...)]).model_dump_json() gives (a test holds them
    equal), at half the cost: validating central's own, already valid, items was as dear as
    making their views. Receivers validate them as LiveBatch all the same.
    """
    out = []
    for start in range(0, len(inserted), LIVE_SLICE):
        items = [
            {"v": 1, "kind": "event", "id": eid, "site": site, "gate": gate,
             "data": event_view(eid, site, gate, event, received_at)}
            for eid, site, gate, event in inserted[start : start + LIVE_SLICE]
        ]  # fmt: skip
        out.append(to_json({"v": 1, "items": items}))
    return out


def _done(info: mqtt.MQTTMessageInfo) -> bool:
    """Published, or never will be: paho raises instead of answering while disconnected (the
    message is dropped with the connection; the stream's clients resume from the store)."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return True
