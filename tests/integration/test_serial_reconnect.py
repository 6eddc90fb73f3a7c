"""Pulling the USB plug: every serial driver raises DeviceError, and reopens on the same path."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.devices.base import DeviceError
from edge.devices.reconnect import Backoff
from edge.devices.relays import LcusRelay, ModbusDoorInput, ModbusRelay
from edge.devices.serial_qr import SerialQrReader
from edge.devices.sim_modbus import ModbusSlaveSim, ModbusThermoSim
from edge.devices.sim_serial import (
    AsciiThermoSim,
    CjmcuThermoSim,
    LcusRelaySim,
    PtySim,
    QrHeadSim,
)
from edge.devices.thermometers import AsciiThermometer, CjmcuThermometer, ModbusThermometer

pytestmark = pytest.mark.timeout(20)


def qr_works(sim: Any, reader: SerialQrReader) -> bool:
    sim.scan("MJ1:X")
    return reader.read(1.0) == "MJ1:X"


def thermo_works(sim: Any, thermometer: Any) -> bool:
    sim.set_temperature(36.7)
    return bool(thermometer.read_celsius(1.0) == pytest.approx(36.7))


def relay_works(sim: Any, relay: Any) -> bool:
    return bool(relay.pulse(10))


def door_works(sim: Any, door: ModbusDoorInput) -> bool:
    sim.set_discrete_input(1, True)
    return door.is_open()


# kind -> (simulator factory, driver factory, "use it once and say whether it worked")
KINDS: dict[str, tuple[Callable[[Path], PtySim], Callable[[str], Any], Callable[..., bool]]] = {
    "qr": (QrHeadSim, SerialQrReader, qr_works),
    "ascii": (
        lambda d: AsciiThermoSim(d, rate_hz=50),
        lambda p: AsciiThermometer(p, 9600, samples=1),
        thermo_works,
    ),
    "cjmcu": (
        lambda d: CjmcuThermoSim(d, rate_hz=50),
        lambda p: CjmcuThermometer(p, samples=1),
        thermo_works,
    ),
    "modbus_thermo": (
        ModbusThermoSim,
        lambda p: ModbusThermometer(p, 9600, 1, 0, samples=1),
        thermo_works,
    ),
    "lcus": (LcusRelaySim, lambda p: LcusRelay(p, 1), relay_works),
    "modbus_relay": (ModbusSlaveSim, lambda p: ModbusRelay(p, 9600, 1, 0), relay_works),
    "modbus_door": (ModbusSlaveSim, lambda p: ModbusDoorInput(p, 9600, 1, 1), door_works),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_unplug_raises_then_replug_reopens_same_path(tmp_path: Path, kind: str) -> None:
    make_sim, make_driver, works = KINDS[kind]
    with make_sim(tmp_path) as sim:
        path = sim.path
        driver = make_driver(path)
        assert works(sim, driver)

        sim.unplug()
        with pytest.raises(DeviceError):
            works(sim, driver)
        driver.close()
        with pytest.raises(DeviceError):
            make_driver(path)

        sim.replug()
        assert sim.path == path
        assert Path(path).resolve() == Path(str(sim.tty)).resolve()
        fresh = make_driver(path)
        assert works(sim, fresh)
        fresh.close()


def test_agent_style_reconnect_loop_with_backoff(tmp_path: Path) -> None:
    with LcusRelaySim(tmp_path) as sim:
        sim.unplug()
        replug = threading.Timer(0.3, sim.replug)
        replug.start()
        backoff = Backoff(0.02, 0.1, rng=random.Random(7))
        started = time.monotonic()
        relay = None
        while relay is None and time.monotonic() - started < 3:
            try:
                relay = LcusRelay(sim.path, 1)
            except DeviceError:
                assert backoff.wait()
        replug.join()
        assert relay is not None
        assert backoff.failures >= 3
        backoff.reset()
        assert backoff.failures == 0
        assert relay.pulse(10) is True
        relay.close()


def test_backoff_doubles_up_to_max_without_jitter() -> None:
    backoff = Backoff(0.1, 1.0, jitter=0)
    delays = [backoff.next_delay() for _ in range(7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_backoff_jitter_stays_within_bounds_and_varies() -> None:
    backoff = Backoff(0.5, 8.0, jitter=0.5, rng=random.Random(1))
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    delays = [backoff.next_delay() for _ in ceilings]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert max(0.5, ceiling / 2) <= delay <= ceiling
    assert len({round(d, 6) for d in delays[4:]}) > 1
    for _ in range(2000):
        assert backoff.next_delay() <= 8.0


def test_backoff_wait_returns_early_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    assert Backoff(5.0, 10.0).wait(stop) is False
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_s": 0.0}, "min_s"),
        ({"min_s": 2.0, "max_s": 1.0}, "min_s"),
        ({"jitter": 1.5}, "jitter"),
        ({"factor": 0.5}, "factor"),
    ],
)
def test_backoff_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)
