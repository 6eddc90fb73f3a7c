"""Serial drivers against pty simulators: QR head lines, thermometers, relays and the door input."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.devices.base import DeviceError
from edge.devices.relays import LcusRelay, ModbusDoorInput, ModbusRelay
from edge.devices.serial_qr import SerialQrReader
from edge.devices.sim_modbus import ModbusSlaveSim, ModbusThermoSim
from edge.devices.sim_serial import (
    AsciiThermoSim,
    CjmcuThermoSim,
    LcusRelaySim,
    PtySim,
    QrHeadSim,
    cjmcu_frame,
)
from edge.devices.thermometers import (
    AsciiThermometer,
    CjmcuThermometer,
    ModbusThermometer,
    SampledThermometer,
)

pytestmark = pytest.mark.timeout(20)


def send_later(sim: PtySim, *chunks: bytes, delay: float = 0.1) -> threading.Thread:
    """Send chunks from another thread once the driver is already waiting for them."""

    def run() -> None:
        time.sleep(delay)
        for chunk in chunks:
            sim.send_raw(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_until(condition: Callable[[], bool], timeout: float = 1.0) -> bool:
    """Poll condition until it holds or timeout passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# --- QR reader head ---------------------------------------------------------------------


@pytest.fixture
def qr(tmp_path: Path) -> Iterator[tuple[QrHeadSim, SerialQrReader]]:
    with QrHeadSim(tmp_path) as sim:
        reader = SerialQrReader(sim.path, max_len=64)
        yield sim, reader
        reader.close()


@pytest.mark.parametrize("terminator", ["\r", "\n", "\r\n"])
def test_qr_lines_with_each_terminator(
    qr: tuple[QrHeadSim, SerialQrReader], terminator: str
) -> None:
    sim, reader = qr
    sim.scan("MJ1:ABC", terminator)
    sim.scan("张三 MJ1:DEF", terminator)
    assert reader.read(1.0) == "MJ1:ABC"
    assert reader.read(1.0) == "张三 MJ1:DEF"
    assert reader.read(0.1) is None
    assert reader.rejected == 0


def test_qr_partial_writes_join_into_one_line(qr: tuple[QrHeadSim, SerialQrReader]) -> None:
    sim, reader = qr
    sim.send_raw(b"MJ1:PA")
    assert reader.read(0.2) is None
    # A multi-byte character split across writes, and a CRLF split between two reads.
    sim.send_raw("RT张".encode()[:-1])
    assert reader.read(0.2) is None
    sim.send_raw("张".encode()[-1:] + b"\r")
    assert reader.read(1.0) == "MJ1:PART张"
    sim.send_raw(b"\n\r\n\n\r")
    assert reader.read(0.2) is None
    assert reader.rejected == 0


def test_qr_garbage_is_dropped_and_counted(qr: tuple[QrHeadSim, SerialQrReader]) -> None:
    sim, reader = qr
    sim.send_raw(b"\xff\xfe\xfd\r\n")  # not UTF-8
    sim.send_raw(b"\x00\x1b[2J\r")  # control characters
    sim.send_raw(b"A" * 50 + b"B" * 50 + b"\n")  # longer than max_len=64
    sim.scan("MJ1:GOOD")
    assert reader.read(1.0) == "MJ1:GOOD"
    assert reader.read(0.1) is None
    assert reader.rejected == 3


# --- thermometers -----------------------------------------------------------------------

ThermoPair = tuple[Any, SampledThermometer]
OFFSET = 0.4


def make_thermo(kind: str, link_dir: Path, rate_hz: float = 50.0, **kwargs: Any) -> ThermoPair:
    """Start a simulator of the kind and open its driver with the given options."""
    kwargs.setdefault("offset", OFFSET)
    kwargs.setdefault("window_s", 1.0)
    if kind == "ascii":
        ascii_sim = AsciiThermoSim(link_dir, rate_hz=rate_hz, fmt="T={c:.2f}C\r\n").start()
        pattern = r"T=(?P<c>-?\d+(?:\.\d+)?)C"
        return ascii_sim, AsciiThermometer(ascii_sim.path, 9600, pattern, **kwargs)
    if kind == "cjmcu":
        cjmcu_sim = CjmcuThermoSim(link_dir, rate_hz=rate_hz).start()
        return cjmcu_sim, CjmcuThermometer(cjmcu_sim.path, **kwargs)
    modbus_sim = ModbusThermoSim(link_dir, unit=3, register=7, scale=0.1).start()
    return modbus_sim, ModbusThermometer(modbus_sim.path, 9600, 3, 7, 0.1, **kwargs)


@pytest.fixture(params=["ascii", "cjmcu", "modbus"])
def thermo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThermoPair]:
    sim, thermometer = make_thermo(request.param, tmp_path)
    yield sim, thermometer
    thermometer.close()
    sim.stop()


@pytest.mark.parametrize("celsius", [36.2, -5.5])
def test_thermometer_reads_set_temperature_with_offset(thermo: ThermoPair, celsius: float) -> None:
    sim, thermometer = thermo
    sim.set_temperature(celsius)
    assert thermometer.read_celsius(2.0) == pytest.approx(celsius + OFFSET, abs=0.001)
    assert thermometer.rejected == 0


def test_thermometer_median_ignores_outliers(thermo: ThermoPair) -> None:
    sim, thermometer = thermo
    # Any five consecutive readings of this cycle have median 36.5 (and a mean of 40.9).
    sim.set_sequence([36.5, 36.6, 95.0, 36.4, -10.0])
    for _ in range(2):
        assert thermometer.read_celsius(2.0) == pytest.approx(36.5 + OFFSET, abs=0.001)


@pytest.mark.parametrize("kind", ["ascii", "cjmcu"])
def test_silent_thermometer_times_out_with_none(tmp_path: Path, kind: str) -> None:
    sim, thermometer = make_thermo(kind, tmp_path, rate_hz=0)
    try:
        started = time.monotonic()
        assert thermometer.read_celsius(0.3) is None
        assert 0.25 < time.monotonic() - started < 1.0
    finally:
        thermometer.close()
        sim.stop()


@pytest.mark.parametrize("kind", ["ascii", "cjmcu"])
def test_streaming_thermometer_ignores_readings_from_before_the_call(
    tmp_path: Path, kind: str
) -> None:
    sim, thermometer = make_thermo(kind, tmp_path)
    try:
        sim.set_temperature(30.0)
        time.sleep(0.3)  # a backlog of 30.0 piles up while nobody is at the gate
        sim.set_temperature(36.6)
        assert thermometer.read_celsius(2.0) == pytest.approx(36.6 + OFFSET)
    finally:
        thermometer.close()
        sim.stop()


def test_ascii_thermometer_drops_garbage_and_implausible_lines(tmp_path: Path) -> None:
    sim, thermometer = make_thermo("ascii", tmp_path, rate_hz=0, samples=1)
    try:
        sender = send_later(
            sim,
            b"\xff\xfe\x00\r\n",  # not UTF-8
            b"T=3x.1C\r\n",  # no match
            b"T=31.0C7\r\n",  # matches only part of the line
            b"T=999.0C\r\n",  # outside the limits
            b"T=36.60C\r\n",
        )
        assert thermometer.read_celsius(2.0) == pytest.approx(36.6 + OFFSET)
        sender.join()
        assert thermometer.rejected == 4
    finally:
        thermometer.close()
        sim.stop()


def test_cjmcu_discards_bad_checksum_and_resyncs(tmp_path: Path) -> None:
    sim, thermometer = make_thermo("cjmcu", tmp_path, rate_hz=0, samples=1)
    try:
        sender = send_later(
            sim,
            b"\x01\x02\x66",  # garbage ending in half a header
            cjmcu_frame(99.0, bad_checksum=True),
            cjmcu_frame(88.0)[:5],  # a frame cut short by a glitch
            cjmcu_frame(36.6),
        )
        assert thermometer.read_celsius(2.0) == pytest.approx(36.6 + OFFSET)
        sender.join()
        assert thermometer.rejected >= 2
    finally:
        thermometer.close()
        sim.stop()


def test_cjmcu_driver_switches_board_to_continuous_output(tmp_path: Path) -> None:
    with CjmcuThermoSim(tmp_path, rate_hz=50, continuous=False, celsius=36.9) as sim:
        thermometer = CjmcuThermometer(sim.path)
        assert thermometer.read_celsius(2.0) == pytest.approx(36.9)
        assert sim.commands == [0x01]
        thermometer.close()


def test_modbus_thermometer_wrong_register_is_a_device_error(tmp_path: Path) -> None:
    with ModbusThermoSim(tmp_path, register=7) as sim:
        thermometer = ModbusThermometer(sim.path, 9600, 1, 8)
        with pytest.raises(DeviceError, match="answered"):
            thermometer.read_celsius(1.0)
        thermometer.close()


def test_modbus_thermometer_reads_input_register(tmp_path: Path) -> None:
    with ModbusThermoSim(tmp_path, register=2, scale=0.01, input_register=True) as sim:
        sim.set_temperature(36.63)
        thermometer = ModbusThermometer(sim.path, 9600, 1, 2, 0.01, table="input", samples=1)
        assert thermometer.read_celsius(1.0) == pytest.approx(36.63)
        thermometer.close()


# --- relays and door input --------------------------------------------------------------


def test_lcus_pulse_switches_on_then_off(tmp_path: Path) -> None:
    with LcusRelaySim(tmp_path, channels=2) as sim:
        relay = LcusRelay(sim.path, channel=2)
        assert relay.pulse(150) is True
        assert wait_until(lambda: len(sim.history) == 2)
        (t_on, ch_on, on), (t_off, ch_off, off) = sim.history
        assert (ch_on, on, ch_off, off) == (2, True, 2, False)
        assert 0.1 <= t_off - t_on < 0.6
        assert sim.state == {1: False, 2: False}
        relay.close()


def test_lcus_state_and_release(tmp_path: Path) -> None:
    with LcusRelaySim(tmp_path, channels=1) as sim:
        relay = LcusRelay(sim.path, channel=1)
        assert relay.state() is False
        sim.state[1] = True
        assert relay.state() is True
        relay.release()
        assert wait_until(lambda: not sim.is_on(1))
        relay.close()


def test_lcus_stuck_relay_pulse_returns_false(tmp_path: Path) -> None:
    with LcusRelaySim(tmp_path) as sim:
        sim.stick()
        relay = LcusRelay(sim.path, channel=1)
        assert relay.pulse(50) is False
        assert sim.history == []
        relay.close()


def test_lcus_board_without_status_reply_fails_pulse(tmp_path: Path) -> None:
    # A silent device at the path: commands vanish and the status query is never answered.
    with QrHeadSim(tmp_path, name="ttyRL9") as sim:
        relay = LcusRelay(sim.path, channel=1, readback_timeout=0.1)
        assert relay.pulse(20) is False
        relay.close()


def test_modbus_relay_pulse_and_stuck(tmp_path: Path) -> None:
    with ModbusSlaveSim(tmp_path, unit=5) as sim:
        relay = ModbusRelay(sim.path, 9600, 5, coil=3)
        assert relay.pulse(120) is True
        assert [(coil, on) for _, coil, on in sim.history] == [(3, True), (3, False)]
        assert 0.08 <= sim.history[1][0] - sim.history[0][0] < 0.6
        sim.stick()
        assert relay.pulse(20) is False
        assert len(sim.history) == 2
        relay.close()


def test_modbus_door_input_shares_the_bus_with_the_relay(tmp_path: Path) -> None:
    with ModbusSlaveSim(tmp_path, unit=2) as sim:
        relay = ModbusRelay(sim.path, 9600, 2, coil=0)
        door = ModbusDoorInput(sim.path, 9600, 2, discrete_input=4)
        reed_nc = ModbusDoorInput(sim.path, 9600, 2, discrete_input=4, open_when=False)
        assert door.is_open() is False
        assert reed_nc.is_open() is True
        sim.set_discrete_input(4, True)
        assert door.is_open() is True
        assert reed_nc.is_open() is False
        assert relay.pulse(10) is True
        for device in (relay, door, reed_nc):
            device.close()


def test_modbus_wrong_unit_gets_no_answer(tmp_path: Path) -> None:
    with ModbusSlaveSim(tmp_path, unit=1) as sim:
        door = ModbusDoorInput(sim.path, 9600, 9, discrete_input=0)
        with pytest.raises(DeviceError):
            door.is_open()
        assert sim.requests == 0
        door.close()
