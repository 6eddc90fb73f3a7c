"""Live fan-out to stream clients, identical on every replica.

The replica that stores an event publishes it on `menjin/v1/central/live`; every replica
(itself included) receives it there and hands it to its own stream clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from central.ingest import Ingest

from central import visibility
from central.auth import Role
from protocol import topics
from protocol.messages import LiveBatch, LiveMessage

log = logging.getLogger(__name__)
QUEUE_LIMIT = 1000


def sse_message(kind: str, data: dict[str, Any], event_id: int | None) -> str:
    """One Server-Sent Events message; only events carry an id (the Last-Event-ID)."""
    head = f"event: {kind}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + f"data: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


@dataclass(frozen=True)
class Outgoing:
    """A live item with its SSE text, encoded once per role for all of this replica's clients
    (an event shows each role only what central/visibility.py lets it see)."""

    item: LiveMessage
    texts: dict[Role, str]

    def text(self, role: Role) -> str:
        return self.texts[role]

    @classmethod
    def of(cls, item: LiveMessage) -> Outgoing:
        if item.kind == "event":
            data = dict(item.data)
            return cls(item, {
                role: sse_message("event", visibility.redact(role, "EventPublic", data), item.id)
                for role in Role
            })  # fmt: skip
        text = sse_message(item.kind, {"site": item.site, "gate": item.gate, "id": item.id,
                                       **item.data}, None)  # fmt: skip
        return cls(item, dict.fromkeys(Role, text))


@dataclass(eq=False)
class Subscriber:
    """One stream client's queue; a client that falls too far behind is cut off."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Outgoing | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )
    overflowed: bool = False

    def ready(self, limit: int = 500) -> list[Outgoing | None]:
        """What is already queued, without waiting."""
        out: list[Outgoing | None] = []
        while len(out) < limit and not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def offer(self, item: Outgoing | None) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


class LiveHub:
    def __init__(self) -> None:
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()
        self.delivered = 0

    @property
    def clients(self) -> int:
        return len(self._subs)

    def subscribe(self) -> Subscriber:
        sub = Subscriber(asyncio.get_running_loop())
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    def dispatch(self, item: LiveMessage) -> None:
        """Called from the MQTT thread: hand the item to every client's event loop."""
        with self._lock:
            subs = list(self._subs)
        out = Outgoing.of(item) if subs else None
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, out)
                self.delivered += 1
            except RuntimeError:  # the client's loop has closed
                self.unsubscribe(sub)

    def close(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, None)
            except RuntimeError:
                continue


def broadcast(ingest: Ingest | None, hub: LiveHub, items: list[LiveMessage]) -> None:
    """Tell every replica's stream clients (through the broker, as ingest does); without a
    broker connection, at least this replica's own."""
    if not items:
        return
    if ingest is not None and ingest.connected.is_set():
        batch = LiveBatch(items=items).model_dump_json()
        ingest.link.publish(topics.central_live_topic(), batch)
        return
    for item in items:
        hub.dispatch(item)
