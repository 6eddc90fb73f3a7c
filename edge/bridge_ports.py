"""What the MQTT bridge is given at construction (edge/assemble.py, menjin/sim_fleet.py): the
gate it serves, where pass hints go, and optionally a shared network loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import paho.mqtt.client as mqtt

from edge.decide import GateContext


class GateControl(Protocol):
    """What central may ask of the gate through the bridge, and what the gate reports back."""

    def remote_open(self) -> bool: ...

    def offer_policy(self, raw: bytes) -> bool: ...

    def live_policy(self) -> GateContext: ...

    def counters(self) -> dict[str, int | bool]: ...


class HintSink(Protocol):
    """Where the device-bound passes of a delta go to be pre-verified (edge/pass_hints.py)."""

    def start(self) -> None: ...

    def close(self) -> None: ...

    def offer(self, texts: Sequence[str]) -> None:
        """Take texts for later; never blocks the caller (the MQTT network thread)."""
        ...

    def counters(self) -> dict[str, int]: ...


class NetworkLoop(Protocol):
    """Serves many bridges' paho clients and sender steps on shared threads, instead of two
    threads per bridge (the simulated fleet: menjin/sim_loop.py). The agent runs its own."""

    def attach(self, client: mqtt.Client, step: Callable[[], float | None]) -> Callable[[], None]:
        """Dial the client (connect_async done) and serve it; run `step` now, again when it
        asks (its return: seconds; None after a failure) or is woken. Returns the wake call."""
        ...

    def redial(self, client: mqtt.Client, pause_s: float) -> None:
        """The link is lost: `reconnect()` after pause_s plus the loop's own backoff."""
        ...

    def detach(self, client: mqtt.Client) -> None:
        """Stop serving the client once it has written its DISCONNECT (or soon after)."""
        ...
