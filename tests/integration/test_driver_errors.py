"""A driver bug is no device fault: the device stops, the agent runs on, nothing is granted."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edge.assemble import assemble_gate
from edge.config import load_gate_settings
from edge.devices.base import DeviceError
from edge.devices.camera import CameraReader
from edge.gate import DeviceFactories, GateAgent
from protocol.messages import EventType, GateEvent
from tests.integration.agent_helpers import issue, journal, make_keys, wait_for, write_config


@dataclass
class Buggy:
    """A driver for any device kind whose calls raise what `fail` returns (None: work)."""

    fail: Callable[[], Exception | None]
    calls: int = 0
    texts: list[str] = field(default_factory=list)

    def _call(self) -> None:
        self.calls += 1
        exc = self.fail()
        if exc is not None:
            raise exc

    def read(self, timeout: float) -> str | None:
        self._call()
        threading.Event().wait(min(timeout, 0.05))
        return self.texts.pop(0) if self.texts else None

    def read_celsius(self, _timeout: float) -> float | None:
        self._call()
        return 36.6

    def pulse(self, _ms: int) -> bool:
        self._call()
        return True

    def hold(self) -> bool:
        self._call()
        return True

    def release(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class Opener:
    """A device factory that counts how often the agent tried to open the device."""

    make: Callable[[], Any]
    opened: int = 0

    def __call__(self) -> Any:
        self.opened += 1
        return self.make()


@pytest.fixture
def run_agent(tmp_path: Path) -> Iterator[Callable[..., GateAgent]]:
    running: list[tuple[GateAgent, threading.Thread]] = []

    def start(devices: DeviceFactories, temperature: str = "required") -> GateAgent:
        key = make_keys(tmp_path)
        config = write_config(tmp_path, key, {}, {"temperature": temperature})
        settings = load_gate_settings(config)
        agent = assemble_gate(settings, devices, uplink=False).agent
        agent.key = key  # type: ignore[attr-defined]
        runner = threading.Thread(target=agent.run)
        runner.start()
        running.append((agent, runner))
        return agent

    yield start
    for agent, runner in running:
        agent.stop.set()
        runner.join(10)
        assert not runner.is_alive(), "the agent must stop cleanly after a driver error"
        agent.cache.close()


def faults(agent: GateAgent, device: str) -> list[GateEvent]:
    return [
        e
        for e in journal(agent.settings.cache_path())
        if e.type is EventType.DEVICE_FAULT and e.reason == device
    ]


def raise_once(exc: Exception) -> Callable[[], Exception | None]:
    pending = [exc]
    return lambda: pending.pop() if pending else None


@pytest.mark.allow_logged_exceptions
@pytest.mark.parametrize("bug", [ValueError("bad index"), TypeError("None + 1"), KeyError("x")])
def test_reader_bug_stops_the_reader_once_and_the_agent_runs_on(
    run_agent: Callable[..., GateAgent],
    bug: Exception,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = Opener(lambda: Buggy(raise_once(bug)))
    agent = run_agent(DeviceFactories(reader=reader))
    wait_for(lambda: faults(agent, "reader"), what="driver error journalled")
    assert agent.reader is not None
    threading.Event().wait(1.0)  # time enough for several reopen attempts, if there were any
    [fault] = faults(agent, "reader")
    assert str(fault.details["error"]).startswith(f"driver error: {type(bug).__name__}")
    assert reader.opened == 1, "a driver bug must not be retried in a loop"
    counters = agent.counters()
    assert (counters["reader_up"], counters["reader_driver_errors"]) == (False, 1)
    assert counters["reader_faults"] == 1
    [critical] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical.exc_info is not None and "reader" in critical.getMessage()
    assert not agent.stop.is_set()
    seq = agent.journal(EventType.AGENT_START)  # the agent's journal still takes entries
    assert journal(agent.settings.cache_path())[-1].seq == seq


@pytest.mark.allow_logged_exceptions
def test_bug_while_opening_is_not_retried(
    run_agent: Callable[..., GateAgent],
) -> None:
    def broken() -> Buggy:
        raise AttributeError("'NoneType' object has no attribute 'fileno'")

    reader = Opener(broken)
    agent = run_agent(DeviceFactories(reader=reader))
    wait_for(lambda: faults(agent, "reader"), what="driver error journalled")
    threading.Event().wait(1.0)
    assert reader.opened == 1
    [fault] = faults(agent, "reader")
    assert str(fault.details["error"]).startswith("driver error: AttributeError")


def test_device_errors_are_still_reopened(
    run_agent: Callable[..., GateAgent],
) -> None:
    reader = Opener(lambda: Buggy(raise_once(DeviceError("port vanished"))))
    agent = run_agent(DeviceFactories(reader=reader))
    wait_for(lambda: reader.opened == 2, what="reopen after a device error")
    assert agent.reader is not None
    wait_for(lambda: agent.reader is not None and agent.reader.up, what="reader up again")
    assert agent.counters()["reader_driver_errors"] == 0
    assert "driver error" not in str(faults(agent, "reader")[0].details["error"])


@pytest.mark.allow_logged_exceptions
def test_thermometer_bug_denies_never_grants(
    run_agent: Callable[..., GateAgent],
) -> None:
    thermometer = Opener(lambda: Buggy(lambda: ZeroDivisionError("calibration / 0")))
    relay = Opener(lambda: Buggy(lambda: None))
    agent = run_agent(DeviceFactories(thermometer=thermometer, relay=relay))
    wait_for(lambda: agent.thermometer is not None and agent.thermometer.up, what="open")
    first, _ = agent.present(issue(agent.key))  # type: ignore[attr-defined]
    second, _ = agent.present(issue(agent.key))  # type: ignore[attr-defined]
    assert (first.granted, first.reason.value) == (False, "no_temperature")
    assert (second.granted, second.reason.value) == (False, "no_temperature")
    assert agent.stats.granted == 0 and relay.make().calls == 0
    [fault] = faults(agent, "thermometer")
    assert str(fault.details["error"]).startswith("driver error: ZeroDivisionError")
    assert thermometer.opened == 1


@pytest.mark.allow_logged_exceptions
def test_relay_bug_is_an_unlock_failure_and_stops_the_relay(
    run_agent: Callable[..., GateAgent],
) -> None:
    relay = Opener(lambda: Buggy(lambda: IndexError("channel table")))
    agent = run_agent(DeviceFactories(relay=relay), temperature="off")
    wait_for(lambda: agent.relay is not None and agent.relay.up, what="relay open")
    agent.present(issue(agent.key))  # type: ignore[attr-defined]
    wait_for(lambda: agent.doorway.stats.unlock_failures == 1, what="unlock failure")
    events = journal(agent.settings.cache_path())
    [failure] = [e for e in events if e.type is EventType.UNLOCK_FAILURE]
    assert "IndexError" in str(failure.reason)
    assert str(faults(agent, "relay")[0].details["error"]).startswith("driver error: IndexError")
    assert agent.remote_open() is False  # stopped: no second try on the same bug
    assert relay.opened == 1


@dataclass
class BrokenSource:
    """A camera FrameSource whose grab() raises: a dying camera (OSError) or our bug."""

    exc: Exception
    live: bool = False

    def grab(self) -> bool:
        raise self.exc

    def retrieve(self) -> None:
        return None

    def release(self) -> None: ...


@pytest.mark.allow_logged_exceptions
@pytest.mark.parametrize(
    ("exc", "is_bug"), [(TypeError("frame[None]"), True), (OSError(5, "USB gone"), False)]
)
def test_camera_capture_thread_tells_a_bug_from_a_dying_camera(
    run_agent: Callable[..., GateAgent], exc: Exception, is_bug: bool
) -> None:
    reader = Opener(lambda: CameraReader(BrokenSource(exc), max_fps=50))
    agent = run_agent(DeviceFactories(reader=reader), temperature="off")
    if is_bug:
        wait_for(lambda: agent.counters()["reader_driver_errors"] == 1, what="driver error")
        threading.Event().wait(1.0)
        assert reader.opened == 1
    else:
        wait_for(lambda: reader.opened >= 2, what="reopened after a camera fault")
        assert agent.counters()["reader_driver_errors"] == 0
