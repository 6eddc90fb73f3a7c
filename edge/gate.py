"""The gate agent: devices -> decide -> journal -> relay, for months without a restart.

Threads: the reader loop (the caller's), the doorway's relay worker and door monitor
(`edge.doorway`), a policy watcher, a snapshot writer, and one reopen thread per faulted device.
Every decision is journalled before the relay moves. The agent is put together with its store,
journal, policy and uplink by `edge.assemble.assemble_gate`; it reads the live policy once per
presentation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edge.cache import GateCache
from edge.config import GateSettings
from edge.decide import (
    BODY_MAX_C,
    Decision,
    Flag,
    GateContext,
    Reason,
    TemperaturePolicy,
    apply_temperature,
    decide,
)
from edge.devices import factory
from edge.devices.base import DoorInput, PassReader, Relay, Thermometer
from edge.doorway import Doorway, Timing
from edge.feedback import Announcer, Feedback, Prompt, announcer_factories, prompt_for
from edge.journal import GateJournal
from edge.live_policy import PolicyKeeper
from edge.snapshots import SnapshotStore
from edge.sounds import ensure_sounds
from edge.supervisor import D, Supervised
from protocol.messages import DetailValue, EventType

log = logging.getLogger(__name__)

READ_POLL_S = 0.2
POLICY_POLL_S = 0.2  # how soon a `menjin gate lockdown|release` in another process takes hold


@dataclass
class DeviceFactories:
    """How to open each device; None where the gate has none. Tests inject simulators here."""

    reader: Callable[[], PassReader] | None = None
    thermometer: Callable[[], Thermometer] | None = None
    relay: Callable[[], Relay] | None = None
    door: Callable[[], DoorInput] | None = None
    feedback: list[Callable[[], Announcer]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: GateSettings) -> DeviceFactories:
        return cls(
            reader=factory.reader_factory(settings.reader, settings.config_dir),
            thermometer=factory.thermometer_factory(settings.thermometer),
            relay=factory.relay_factory(settings.relay),
            door=factory.door_factory(settings.door),
            feedback=announcer_factories(settings.feedback, settings.config_dir),
        )


@dataclass
class AgentStats:
    presentations: int = 0
    debounced: int = 0
    granted: int = 0
    denied: int = 0
    sensor_faults: int = 0
    timings: list[Timing] = field(default_factory=list)


class GateAgent:
    """Runs one gate until `stop` is set."""

    def __init__(
        self,
        settings: GateSettings,
        cache: GateCache,
        devices: DeviceFactories,
        policy: PolicyKeeper,
        journal: GateJournal,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.cache = cache
        self.stop = stop or threading.Event()
        self.writer = journal
        self.clock = journal.clock
        self.stats = AgentStats()
        self._last_text: str | None = None
        self._last_seen = 0.0
        a = settings.agent
        self.snapshots = SnapshotStore(
            settings.snapshot_dir(),
            max_files=a.snapshot_max_files,
            max_bytes=int(a.snapshot_max_mb * 2**20),
            max_age_s=a.snapshot_max_days * 86_400,
            on_error=lambda msg: self._fault("snapshots", msg),
        )
        self.reader: Supervised[PassReader] | None = self._supervise("reader", devices.reader)
        self.thermometer: Supervised[Thermometer] | None = self._supervise(
            "thermometer", devices.thermometer
        )
        self.relay: Supervised[Relay] | None = self._supervise("relay", devices.relay)
        self.door: Supervised[DoorInput] | None = self._supervise("door", devices.door)
        self.feedback = Feedback(devices.feedback)
        self.doorway = Doorway(
            settings, self.relay, self.door,
            journal=self.journal, snapshot=self._snapshot, feedback=self.feedback, stop=self.stop,
        )  # fmt: skip

    def _supervise(self, name: str, make: Callable[[], D] | None) -> Supervised[D] | None:
        return None if make is None else Supervised(name, make, self._fault, self.stop)

    # --- journal -------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.writer.now()

    def journal(self, event_type: EventType, **fields: Any) -> int:
        return self.writer.append(event_type, **fields)

    def _fault(self, device: str, message: str) -> None:
        self.journal(EventType.DEVICE_FAULT, reason=device, details={"error": message[:500]})

    # --- lifecycle -----------------------------------------------------------------------

    def run(self) -> None:
        """Start the devices and serve presentations until stop is set; then shut down cleanly."""
        epoch = self.cache.begin_boot(self.clock())
        self.journal(EventType.AGENT_START, details={"epoch": epoch})
        self.start_devices(wait_s=2.0)
        self.feedback.start(prepare=self._prepare_sounds)
        workers = [
            *self.doorway.threads(),
            threading.Thread(target=self._housekeeping_loop, name="prune", daemon=True),
            threading.Thread(target=self._policy_loop, name="policy", daemon=True),
        ]
        for w in workers:
            w.start()
        try:
            self._reader_loop()
        finally:
            self.doorway.finish()
            for w in workers:
                w.join(timeout=5.0)
            self._shutdown()

    def devices(self) -> list[Supervised[Any]]:
        return [d for d in (self.reader, self.thermometer, self.relay, self.door) if d]

    def start_devices(self, wait_s: float) -> None:
        """Open every device in the background, waiting up to wait_s for each first open."""
        for dev in self.devices():
            dev.start(wait_s=wait_s)

    def close_devices(self) -> None:
        for dev in self.devices():
            dev.close()

    def _shutdown(self) -> None:
        self.doorway.release_at_shutdown()
        self.journal(EventType.AGENT_STOP, details={"presentations": self.stats.presentations})
        self.close_devices()
        self.feedback.close()
        self.snapshots.close()

    # --- presentations -------------------------------------------------------------------

    def _reader_loop(self) -> None:
        while not self.stop.is_set():
            reader = self.reader.get() if self.reader else None
            if reader is None:
                self.stop.wait(READ_POLL_S)
                continue
            try:
                text = reader.read(READ_POLL_S)
            except Exception as exc:  # fault() tells a device error from a driver bug
                assert self.reader is not None
                self.reader.fault(exc)
                continue
            if text is None or self._debounced(text):
                continue
            timing = Timing(decode_ms=getattr(reader, "last_decode_ms", None))
            try:
                self.present(text, timing)
            except Exception:  # never let one presentation stop the gate
                log.exception("presentation failed")

    def _debounced(self, text: str) -> bool:
        now = time.monotonic()
        same = text == self._last_text and now - self._last_seen < self.settings.agent.debounce_s
        self._last_text, self._last_seen = text, now
        if same:
            self.stats.debounced += 1
        return same

    def present(
        self, text: str, timing: Timing | None = None, *, record: bool = True
    ) -> tuple[Decision, int | None]:
        """Decide one presentation on one policy snapshot, journal it, queue the relay pulse.

        Every presentation goes through here: the reader loop, `menjin gate present`, tests
        and benchmarks. With record=False (a dry run) nothing is journalled or switched.
        """
        timing = timing or Timing()
        ctx = self.policy.current()  # read once: the whole decision uses this one object
        started = time.perf_counter()
        decision = decide(text, ctx, self.cache, self.now(), None)
        t1 = time.perf_counter()
        temperature, temp_details = self._temperature_for(decision, ctx, record)
        decision = apply_temperature(decision, ctx, temperature)
        t2 = time.perf_counter()
        if not record:
            return decision, None
        seq = self._journal_decision(decision, ctx, temp_details)
        t3 = time.perf_counter()
        timing.decide_ms = (t1 - started) * 1000
        timing.temperature_ms = (t2 - t1) * 1000
        timing.journal_ms = (t3 - t2) * 1000
        self.stats.presentations += 1
        if decision.granted:
            self.stats.granted += 1
            self.doorway.open_for(seq, timing, t3)
        else:
            self.stats.denied += 1
        self.feedback.say(prompt_for(decision.reason.value))  # after the relay job, never before
        self.stats.timings.append(timing)
        del self.stats.timings[:-1000]
        log.info("seq %d %s %s", seq, decision.reason.value, decision.pass_id or "-")
        return decision, seq

    def _journal_decision(
        self, decision: Decision, ctx: GateContext, temp_details: dict[str, DetailValue]
    ) -> int:
        snapshot = None
        if not decision.granted or Flag.FEVER in decision.flags:
            snapshot = self._snapshot()
        return self.journal(
            EventType.DECISION,
            granted=decision.granted,
            reason=decision.reason.value,
            pass_id=decision.pass_id,
            temperature_c=decision.temperature_c,
            snapshot=snapshot,
            details={
                **decision.journal_details(),
                **temp_details,
                "policy_version": ctx.policy_version,
            },
            use=(ctx.gate, ctx.direction.value, decision.valid_until) if decision.granted else None,
            live_slot=decision.live_slot if decision.granted else None,
            verified=decision.verified_signature(),
        )

    def _temperature_for(
        self, pre: Decision, ctx: GateContext, record: bool
    ) -> tuple[float | None, dict[str, DetailValue]]:
        """Read a temperature only for a pass that is otherwise good, re-testing a fever."""
        if ctx.temperature is TemperaturePolicy.OFF or self.thermometer is None:
            return None, {}
        if pre.reason not in (Reason.OK, Reason.NO_TEMPERATURE):
            return None, {}
        first = self._read_temperature()
        details: dict[str, DetailValue] = {}
        reading = first
        if first is not None and ctx.fever_threshold_c <= first <= BODY_MAX_C:
            details["first_reading_c"] = first
            self.feedback.say(Prompt.RETEST)
            self.stop.wait(self.settings.agent.retest_pause_s)
            retest = self._read_temperature()
            details["retest_c"] = retest
            # The re-test decides; if it never came, the fever reading stands.
            reading = first if retest is None else retest
        if reading is None and record:
            self.stats.sensor_faults += 1
            self.journal(EventType.SENSOR_FAULT, reason="no_reading", pass_id=pre.pass_id)
        return reading, details

    def _read_temperature(self) -> float | None:
        assert self.thermometer is not None
        sensor = self.thermometer.get()
        if sensor is None:
            return None
        try:
            return sensor.read_celsius(self.settings.agent.temperature_timeout_s)
        except Exception as exc:  # fault() tells a device error from a driver bug
            self.thermometer.fault(exc)
            return None

    def _prepare_sounds(self) -> None:
        """Make any missing default prompt WAV (speech where espeak-ng is installed)."""
        fb = self.settings.feedback
        if fb.speaker == "alsa":
            report = ensure_sounds(self.settings.resolve(fb.sounds_dir))
            if report.spoken or report.tones:
                log.info("made prompts: %d spoken, %d tones", len(report.spoken), len(report.tones))

    def _snapshot(self) -> str | None:
        reader = self.reader.get() if self.reader else None
        last_frame = getattr(reader, "last_frame", None)
        if last_frame is None:
            return None
        try:
            return self.snapshots.request(last_frame())
        except Exception as exc:  # a snapshot is a nicety; the decision is not
            log.warning("snapshot failed: %s", exc)
            return None

    def remote_open(self) -> bool:
        """Open the door now for a remote command; True when the relay confirmed it."""
        return self.doorway.remote_open()

    # --- policy ----------------------------------------------------------------------------

    def live_policy(self) -> GateContext:
        return self.policy.current()

    def offer_policy(self, raw: bytes) -> bool:
        """A signed policy document arrived (from the uplink): apply it if it may be applied."""
        applied = self.policy.offer(raw)
        if applied:
            self._follow_release()
        return applied

    def _policy_loop(self) -> None:
        while not self.stop.wait(POLICY_POLL_S):
            try:
                self.policy.refresh()  # a guard's CLI in another process writes the store
                self._follow_release()
            except Exception:
                log.exception("policy refresh failed")

    def _follow_release(self) -> None:
        self.doorway.follow_release(self.policy.current().emergency_release)

    # --- housekeeping ----------------------------------------------------------------------

    def _housekeeping_loop(self) -> None:
        while not self.stop.wait(self.settings.agent.prune_interval_s):
            try:
                self.cache.prune(self.clock(), on_dropped=self._report_dropped)
                self.snapshots.prune_expired(self.clock())
            except Exception:
                log.exception("cache prune failed")

    def _report_dropped(self, count: int, ranges: list[str]) -> None:
        self.journal(
            EventType.JOURNAL_DROPPED,
            details={
                "dropped": count,
                "dropped_total": self.cache.dropped_total(),
                "ranges": ranges[:200],
            },
        )

    def counters(self) -> dict[str, int | bool]:
        """What the gate counted (rejects, faults, outcomes), sent with every status message."""
        s = self.stats
        out: dict[str, int | bool] = {
            "presentations": s.presentations,
            "granted": s.granted,
            "denied": s.denied,
            "debounced": s.debounced,
            **self.doorway.counters(),
            "sensor_faults": s.sensor_faults,
            "snapshots_saved": self.snapshots.saved,
            "snapshots_failed": self.snapshots.failed,
            **self.feedback.counters(),
            **self.policy.counters(),
        }
        for dev in self.devices():
            out[f"{dev.name}_up"] = dev.up
            out[f"{dev.name}_faults"] = dev.faults
            out[f"{dev.name}_driver_errors"] = dev.driver_errors
            # What the open driver counted: lines/frames rejected, frames the decoder failed on.
            for counter in ("rejected", "decode_errors"):
                value = getattr(dev.get(), counter, None)
                if isinstance(value, int):
                    out[f"{dev.name}_{counter}"] = value
        return out
