"""The gate's journal writer: every entry any part of the gate records goes through `append`.

It stamps each entry with the gate's clock in the live policy's time zone and the uplink's
clock facts, commits it, and wakes the sender. The uplink's state lives in `LinkState`, which
both this writer and the MQTT bridge are given, so neither needs the other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from edge.cache import GateCache
from edge.decide import GateContext
from protocol.messages import DetailValue, EventType


class Journal(Protocol):
    """What a part of the gate needs to record something."""

    def append(self, event_type: EventType, **fields: Any) -> int: ...


class PolicyView(Protocol):
    def current(self) -> GateContext: ...


@dataclass
class LinkState:
    """What the uplink measured (recorded on every entry) and the sender's wake-up."""

    clock_skew_s: float | None = None
    wake: threading.Event = field(default_factory=threading.Event)


class GateJournal:
    """Durable append to the gate's store; implements Journal."""

    def __init__(
        self,
        cache: GateCache,
        policy: PolicyView,
        link: LinkState,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.policy = policy
        self.link = link
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).astimezone(self.policy.current().tz)

    def context(self) -> dict[str, DetailValue]:
        """Clock facts recorded on every journal entry."""
        out: dict[str, DetailValue] = {}
        if self.link.clock_skew_s is not None:
            out["clock_skew_s"] = round(self.link.clock_skew_s, 3)
        last = self.cache.last_sync()
        if last is not None:
            out["since_sync_s"] = round(time.time() - last, 1)
        return out

    def append(self, event_type: EventType, **fields: Any) -> int:
        fields["details"] = {**self.context(), **(fields.get("details") or {})}
        seq = self.cache.journal_append(event_type, self.now(), **fields)
        self.link.wake.set()
        return seq
