"""The agent end to end on simulated devices at real tty paths."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import segno

from edge.assemble import assemble_gate
from edge.config import load_gate_settings
from edge.devices.sim_camera import ImageFeedCamera
from edge.devices.sim_modbus import ModbusSlaveSim
from edge.devices.sim_serial import AsciiThermoSim, LcusRelaySim, QrHeadSim
from edge.devices.thermometers import AsciiThermometer
from edge.gate import DeviceFactories, GateAgent
from protocol.messages import EventType
from tests.integration.agent_helpers import issue, journal, make_keys, wait_for, write_config


def decisions(cache_path: Path) -> list[tuple[str | None, bool | None]]:
    return [(e.reason, e.granted) for e in journal(cache_path) if e.type is EventType.DECISION]


def types(cache_path: Path) -> list[EventType]:
    return [e.type for e in journal(cache_path)]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[dict[str, object]]:
    links = tmp_path / "dev"
    links.mkdir()
    qr = QrHeadSim(links).start()
    thermo = AsciiThermoSim(links, rate_hz=40, celsius=36.6).start()
    relay = LcusRelaySim(links).start()
    door = ModbusSlaveSim(links, name="ttyDOOR0").start()
    yield {"qr": qr, "thermo": thermo, "relay": relay, "door": door, "links": links}
    for sim in (qr, thermo, relay, door):
        sim.stop()


def serial_sections(rig: dict[str, object]) -> dict[str, dict[str, object]]:
    def path(name: str) -> str:
        return str(getattr(rig[name], "path"))  # noqa: B009

    return {
        "reader": {"kind": "serial", "port": path("qr")},
        "thermometer": {"kind": "ascii", "port": path("thermo"), "window_s": 0.2},
        "relay": {"kind": "lcus", "port": path("relay"), "channel": 1, "pulse_ms": 200},
        "door": {"kind": "modbus", "port": path("door"), "input": 0,
                 "held_open_s": 1.0, "grant_grace_s": 1.5},
        "agent": {"debounce_s": 1.0, "temperature_timeout_s": 1.0, "retest_pause_s": 0.3},
    }  # fmt: skip


def test_gate_run_drives_simulated_devices_end_to_end(
    tmp_path: Path, rig: dict[str, object]
) -> None:
    qr, relay, door = rig["qr"], rig["relay"], rig["door"]
    assert isinstance(qr, QrHeadSim) and isinstance(relay, LcusRelaySim)
    assert isinstance(door, ModbusSlaveSim)
    key = make_keys(tmp_path)
    config = write_config(tmp_path, key, serial_sections(rig), {"temperature": "required"})
    cache_path = load_gate_settings(config).cache_path()
    exe = Path(sys.executable).parent / "menjin"
    proc = subprocess.Popen(
        [str(exe), "gate", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: cache_path.exists() and EventType.AGENT_START in types(cache_path))
        time.sleep(0.5)

        # A good pass opens the door; held in front of the reader it is still one presentation.
        text = issue(key)
        qr.scan(text)
        qr.scan(text)
        wait_for(lambda: len(relay.history) >= 2, what="relay on then off")
        assert [on for _, _, on in relay.history[:2]] == [True, False]
        assert 0.15 < relay.history[1][0] - relay.history[0][0] < 0.8
        assert decisions(cache_path) == [("ok", True)]

        # The door opening right after the grant is fine; held open too long is an alert.
        door.set_discrete_input(0, True)
        wait_for(lambda: EventType.DOOR_HELD_OPEN in types(cache_path), what="held open")
        door.set_discrete_input(0, False)
        assert EventType.DOOR_FORCED not in types(cache_path)
        time.sleep(1.6)  # past the grace period: an opening now is forced
        door.set_discrete_input(0, True)
        wait_for(lambda: EventType.DOOR_FORCED in types(cache_path), what="door forced")
        door.set_discrete_input(0, False)

        # Garbage from the reader head is rejected and denied, never a crash.
        qr.send_raw(b"\xff\xfe\x00garbage\r")
        qr.scan("NOT A PASS")
        wait_for(lambda: ("malformed", False) in decisions(cache_path), what="malformed")

        # Unplugged reader: a fault is journalled; plugged back, the agent reads again.
        qr.unplug()
        wait_for(
            lambda: any(
                e.type is EventType.DEVICE_FAULT and e.reason == "reader"
                for e in journal(cache_path)
            ),
            what="reader fault",
        )
        time.sleep(0.5)
        qr.replug()
        second = issue(key)
        deadline = time.monotonic() + 15
        while decisions(cache_path).count(("ok", True)) < 2 and time.monotonic() < deadline:
            qr.scan(second)
            time.sleep(0.7)
        assert decisions(cache_path).count(("ok", True)) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    events = journal(cache_path)
    assert events[-1].type is EventType.AGENT_STOP
    assert not relay.is_on(1)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def qr_image(text: str, path: Path) -> Path:
    segno.make(text, error="m", micro=False).save(str(path), scale=6, border=4)
    return path


@pytest.fixture
def camera_agent(
    tmp_path: Path, rig: dict[str, object]
) -> Iterator[tuple[GateAgent, ImageFeedCamera, AsciiThermoSim, LcusRelaySim]]:
    thermo, relay = rig["thermo"], rig["relay"]
    assert isinstance(thermo, AsciiThermoSim) and isinstance(relay, LcusRelaySim)
    key = make_keys(tmp_path)
    sections = serial_sections(rig)
    del sections["door"]
    config = write_config(tmp_path, key, sections, {"temperature": "required"})
    settings = load_gate_settings(config)
    camera = ImageFeedCamera(max_fps=30)
    devices = DeviceFactories.from_settings(settings)
    devices.reader = lambda: camera
    agent = assemble_gate(settings, devices, uplink=False).agent
    agent.key = key  # type: ignore[attr-defined]
    runner = threading.Thread(target=agent.run)
    runner.start()
    wait_for(lambda: agent.relay is not None and agent.relay.up, what="relay open")
    yield agent, camera, thermo, relay
    agent.stop.set()
    runner.join(10)
    assert not runner.is_alive()
    agent.cache.close()


def test_fever_is_retested_denied_and_snapshotted(
    tmp_path: Path, camera_agent: tuple[GateAgent, ImageFeedCamera, AsciiThermoSim, LcusRelaySim]
) -> None:
    agent, camera, thermo, relay = camera_agent
    thermo.set_temperature(38.4)
    camera.show(qr_image(issue(agent.key), tmp_path / "p.png"))  # type: ignore[attr-defined]
    wait_for(lambda: agent.stats.presentations == 1, what="presentation")
    [event] = [e for e in journal(agent.settings.cache_path()) if e.type is EventType.DECISION]
    assert (event.granted, event.reason) == (False, "fever")
    assert event.temperature_c == pytest.approx(38.4, abs=0.05)
    assert event.details["first_reading_c"] == pytest.approx(38.4, abs=0.05)
    assert event.details["retest_c"] == pytest.approx(38.4, abs=0.05)
    assert event.snapshot is not None
    wait_for(lambda: (agent.settings.snapshot_dir() / str(event.snapshot)).exists(), what="jpeg")
    assert relay.history == []


def test_fever_that_passes_on_retest_is_granted(
    tmp_path: Path, camera_agent: tuple[GateAgent, ImageFeedCamera, AsciiThermoSim, LcusRelaySim]
) -> None:
    agent, camera, thermo, relay = camera_agent
    thermo.set_temperature(37.9)  # e.g. just came in from the sun
    threading.Timer(0.25, thermo.set_temperature, (36.7,)).start()
    camera.show(qr_image(issue(agent.key), tmp_path / "p.png"))  # type: ignore[attr-defined]
    wait_for(lambda: len(relay.history) >= 1, what="relay")
    [event] = [e for e in journal(agent.settings.cache_path()) if e.type is EventType.DECISION]
    assert (event.granted, event.reason) == (True, "ok")
    assert event.details["first_reading_c"] == pytest.approx(37.9, abs=0.05)
    assert event.temperature_c == pytest.approx(36.7, abs=0.05)


def test_stuck_relay_is_an_unlock_failure_with_snapshot(
    tmp_path: Path, camera_agent: tuple[GateAgent, ImageFeedCamera, AsciiThermoSim, LcusRelaySim]
) -> None:
    agent, camera, _, relay = camera_agent
    relay.stick()
    camera.show(qr_image(issue(agent.key), tmp_path / "p.png"))  # type: ignore[attr-defined]
    cache_path = agent.settings.cache_path()
    # The stat is counted just before the entry is journalled: wait for the entry itself.
    wait_for(lambda: EventType.UNLOCK_FAILURE in types(cache_path), what="unlock failure")
    counters = agent.counters()
    assert (counters["unlock_failures"], counters["relay_up"]) == (1, True)
    events = journal(cache_path)
    failure = next(e for e in events if e.type is EventType.UNLOCK_FAILURE)
    decision = next(e for e in events if e.type is EventType.DECISION)
    assert failure.details["decision_seq"] == decision.seq
    assert failure.snapshot is not None


def test_silent_thermometer_denies_with_sensor_fault(
    tmp_path: Path, camera_agent: tuple[GateAgent, ImageFeedCamera, AsciiThermoSim, LcusRelaySim]
) -> None:
    agent, camera, thermo, relay = camera_agent
    thermo.rate_hz = 0  # the sensor stops talking
    time.sleep(0.2)
    camera.show(qr_image(issue(agent.key), tmp_path / "p.png"))  # type: ignore[attr-defined]
    wait_for(lambda: agent.stats.presentations == 1, what="presentation")
    events = journal(agent.settings.cache_path())
    decision = next(e for e in events if e.type is EventType.DECISION)
    assert (decision.granted, decision.reason) == (False, "no_temperature")
    assert any(e.type is EventType.SENSOR_FAULT for e in events)
    assert relay.history == []


def test_full_snapshot_directory_never_stops_the_agent(
    tmp_path: Path, camera_agent: tuple[GateAgent, ImageFeedCamera, AsciiThermoSim, LcusRelaySim]
) -> None:
    agent, camera, thermo, _ = camera_agent
    snapdir = agent.settings.snapshot_dir()
    snapdir.parent.mkdir(parents=True, exist_ok=True)
    snapdir.write_text("a file where the directory should be")  # every write will fail
    thermo.set_temperature(39.0)
    camera.show(qr_image(issue(agent.key), tmp_path / "p.png"))  # type: ignore[attr-defined]
    wait_for(lambda: agent.snapshots.failed >= 1, what="snapshot failure")
    wait_for(
        lambda: any(
            e.type is EventType.DEVICE_FAULT and e.reason == "snapshots"
            for e in journal(agent.settings.cache_path())
        ),
        what="snapshot fault journalled",
    )
    thermo.set_temperature(36.5)
    camera.show(np.full((480, 640, 3), 255, np.uint8))
    time.sleep(1.2)  # past the debounce
    camera.show(qr_image(issue(agent.key), tmp_path / "q.png"))  # type: ignore[attr-defined]
    wait_for(lambda: agent.stats.granted == 1, what="grant after snapshot failure")


def test_thermometer_driver_type_is_what_config_builds(rig: dict[str, object]) -> None:
    from edge.devices.factory import ThermometerSection, thermometer_factory

    thermo = rig["thermo"]
    assert isinstance(thermo, AsciiThermoSim)
    make = thermometer_factory(ThermometerSection(kind="ascii", port=thermo.path))
    assert make is not None
    sensor = make()
    try:
        assert isinstance(sensor, AsciiThermometer)
        assert sensor.read_celsius(2.0) == pytest.approx(36.6, abs=0.05)
    finally:
        sensor.close()
