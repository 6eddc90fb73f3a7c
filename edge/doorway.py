"""The door side of a gate: the relay worker, the door monitor and the emergency hold.

Apart from deciding (`edge.gate`): a decision is journalled first and then queued here, so a
slow or failing relay never holds up the next presentation. A door that opens without a recent
grant is journalled as forced, one left open too long as held open; an emergency release holds
the relay until the policy ends it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.config import GateSettings
from edge.devices.base import DoorInput, Relay
from edge.feedback import Feedback, Prompt
from edge.supervisor import Supervised
from protocol.messages import EventType

log = logging.getLogger(__name__)

DOOR_POLL_S = 0.1


@dataclass
class Timing:
    """Where the time went for one presentation, in milliseconds."""

    decode_ms: float | None = None
    temperature_ms: float = 0.0
    decide_ms: float = 0.0
    journal_ms: float = 0.0
    relay_ms: float | None = None


@dataclass
class DoorStats:
    unlock_failures: int = 0
    door_forced: int = 0
    door_held_open: int = 0


class Doorway:
    """The relay and the door sensor of one gate (either may be None), run by two threads."""

    def __init__(
        self,
        settings: GateSettings,
        relay: Supervised[Relay] | None,
        door: Supervised[DoorInput] | None,
        *,
        journal: Callable[..., int],
        snapshot: Callable[[], str | None],
        feedback: Feedback,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.relay = relay
        self.door = door
        self.journal = journal
        self.snapshot = snapshot
        self.feedback = feedback
        self.stop = stop
        self.stats = DoorStats()
        self.held_open = False
        # One lock around "is the door held open?" and every relay operation: a pulse or a
        # remote open must never switch off a relay that an emergency release holds on.
        self._lock = threading.Lock()
        self._last_grant_at = -1e18
        self._jobs: queue.Queue[tuple[int, Timing, float] | None] = queue.Queue()

    def threads(self) -> list[threading.Thread]:
        return [
            threading.Thread(target=self._relay_loop, name="relay", daemon=True),
            threading.Thread(target=self._door_loop, name="door", daemon=True),
        ]

    def finish(self) -> None:
        """Let the relay worker end once the pulses already queued are done."""
        self._jobs.put(None)

    def release_at_shutdown(self) -> None:
        relay = self.relay.get() if self.relay else None
        if relay is not None:
            try:
                relay.release()
            except Exception as exc:  # shutting down: the stop must still be journalled
                log.warning("could not release relay at shutdown: %s", exc)

    # --- relay -----------------------------------------------------------------------------

    def open_for(self, seq: int, timing: Timing, queued_at: float) -> None:
        """A granted decision `seq` is journalled: pulse the relay for it (in the worker)."""
        self._last_grant_at = time.monotonic()
        self._jobs.put((seq, timing, queued_at))

    def _relay_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            seq, timing, queued_at = job
            try:
                self._pulse(seq, timing, queued_at)
            except Exception:
                log.exception("relay job for seq %d failed", seq)

    def _pulse(self, seq: int, timing: Timing, queued_at: float) -> None:
        if self.relay is None:
            return  # a gate with no relay (display-only) just records
        with self._lock:
            if self.held_open:
                return  # emergency release: the door already stands open; a pulse would close it
            problem = self._pulse_locked(timing, queued_at)
        if problem:
            self.stats.unlock_failures += 1
            self.feedback.say(Prompt.UNLOCK_FAILED)
            self.journal(
                EventType.UNLOCK_FAILURE,
                reason=problem,
                snapshot=self.snapshot(),
                details={"decision_seq": seq},
            )

    def _pulse_locked(self, timing: Timing, queued_at: float) -> str | None:
        assert self.relay is not None
        relay = self.relay.get()
        problem = None
        if relay is None:
            problem = "relay unavailable"
        else:
            timing.relay_ms = (time.perf_counter() - queued_at) * 1000
            try:
                if not relay.pulse(self.settings.relay.pulse_ms):
                    problem = "read-back did not show the relay on"
            except Exception as exc:  # fault() tells a device error from a driver bug
                self.relay.fault(exc)
                problem = f"relay failed: {type(exc).__name__}: {exc}"
        return problem

    def remote_open(self) -> bool:
        """Open the door now for a remote command; True when the relay confirmed it.

        During an emergency release the door already stands open: nothing is switched (a pulse
        would end in "off" and lock the held door) and the answer is True.
        """
        self._last_grant_at = time.monotonic()
        with self._lock:
            if self.held_open:
                return True
            relay = self.relay.get() if self.relay else None
            if relay is None:
                return False
            try:
                return relay.pulse(self.settings.relay.pulse_ms)
            except Exception as exc:  # fault() tells a device error from a driver bug
                assert self.relay is not None
                self.relay.fault(exc)
                return False

    def follow_release(self, want: bool) -> None:
        """Hold the relay open while an emergency release is in force; lock again after."""
        if want == self.held_open or self.relay is None:
            return
        with self._lock:  # waits for a pulse under way (at most pulse_ms), then holds
            relay = self.relay.get()
            if relay is None:
                return  # tried again on the next poll, once the relay is back
            try:
                held = relay.hold() if want else _release(relay)
            except Exception as exc:  # fault() tells a device error from a driver bug
                self.relay.fault(exc)
                return
            self.held_open = want
        reason = "ok" if held else "no_readback"
        self.journal(EventType.EMERGENCY_RELEASE, granted=want, reason=reason)

    # --- door ------------------------------------------------------------------------------

    def _door_loop(self) -> None:
        if self.door is None:
            return
        was_open = False
        opened_at = 0.0
        held_reported = False
        cfg = self.settings.door
        while not self.stop.wait(DOOR_POLL_S):
            door = self.door.get()
            if door is None:
                continue
            try:
                is_open = door.is_open()
            except Exception as exc:  # fault() tells a device error from a driver bug
                self.door.fault(exc)
                continue
            now = time.monotonic()
            if is_open and not was_open:
                opened_at, held_reported = now, False
                if now - self._last_grant_at > cfg.grant_grace_s:
                    self.stats.door_forced += 1
                    self.journal(EventType.DOOR_FORCED, snapshot=self.snapshot())
            elif is_open and not held_reported and now - opened_at > cfg.held_open_s:
                held_reported = True
                self.stats.door_held_open += 1
                self.journal(
                    EventType.DOOR_HELD_OPEN, details={"open_s": round(now - opened_at, 1)}
                )
            was_open = is_open

    def counters(self) -> dict[str, Any]:
        return {"unlock_failures": self.stats.unlock_failures}


def _release(relay: Relay) -> bool:
    relay.release()
    return True
