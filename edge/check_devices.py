"""The device lines of `menjin gate check`: each device opened through the agent's own factory.

A failed open is diagnosed from the errno and the path: a missing port lists the ports that do
exist, EACCES names the group to join, a held lock points at a running agent.
"""

from __future__ import annotations

import errno
import glob
import grp
import os
import re
import time
from collections.abc import Callable
from typing import TypeVar

from edge.cache import GateCache
from edge.check import GateCheckOptions, user
from edge.config import GateSettings
from edge.decide import BODY_MAX_C, BODY_MIN_C, Reason
from edge.devices import factory
from edge.devices.base import PassReader
from edge.supervisor import DEVICE_ERRORS, Closable
from protocol.check_report import FAIL, OK, SKIP, WARN, CheckLine, Param
from protocol.gate_policy import TemperaturePolicy

AMBIENT_MIN_C = -30.0  # below this a reading is not an ambient one either: a broken sensor
PORT_GLOBS = ("/dev/ttyUSB*", "/dev/ttyACM*", "/dev/serial/by-id/*")
FRAME_RATE_WINDOW_S = 1.0

D = TypeVar("D", bound=Closable)


def device_checks(
    settings: GateSettings, opts: GateCheckOptions, cache: GateCache | None
) -> list[CheckLine]:
    lines = reader_lines(settings, opts, cache)
    lines.append(thermometer_line(settings))
    lines.append(relay_line(settings, opts.pulse))
    lines.append(door_line(settings))
    return lines


def _cause_errno(exc: BaseException) -> int | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


def existing_ports(configured: str) -> list[str]:
    """Serial ports that exist: the usual USB names, and siblings of the configured path."""
    found = {p for pattern in PORT_GLOBS for p in glob.glob(pattern)}
    parent, name = os.path.split(configured)
    stem = re.sub(r"\d+$", "", name)
    if parent and stem:
        found |= set(glob.glob(os.path.join(glob.escape(parent), glob.escape(stem) + "*")))
    return sorted(found - {configured})


def port_problem(check: str, port: str, exc: BaseException) -> CheckLine:
    """Why a serial port did not open, and what to do about it."""
    code = _cause_errno(exc)
    params: dict[str, Param] = {"port": port, "error": str(exc), "user": user()}
    if code == errno.ENOENT or not os.path.exists(port):
        others = existing_ports(port)
        params["ports"] = ", ".join(others)
        hint = "port.others" if others else "port.none_plugged"
        return CheckLine(check, FAIL, "port.missing", params, hint)
    if code == errno.EACCES or not os.access(port, os.R_OK | os.W_OK):
        params["group"] = grp.getgrgid(os.stat(port).st_gid).gr_name
        return CheckLine(check, FAIL, "port.denied", params, "port.denied")
    if code in (errno.EAGAIN, errno.EBUSY):
        return CheckLine(check, FAIL, "port.busy", params, "port.busy")
    return CheckLine(check, FAIL, "port.error", params, "port.error")


def _open(check: str, port: str, make: Callable[[], D]) -> D | CheckLine:
    try:
        return make()
    except DEVICE_ERRORS as exc:
        return port_problem(check, port, exc)


def reader_lines(
    settings: GateSettings, opts: GateCheckOptions, cache: GateCache | None
) -> list[CheckLine]:
    cfg = settings.reader
    make = factory.reader_factory(cfg, settings.config_dir)
    if make is None:
        return [CheckLine("reader.open", SKIP, "device.none")]
    if cfg.kind == "camera":
        opened, line = _open_camera(settings, make)
    else:
        reader = _open("reader.open", cfg.port, make)
        opened = None if isinstance(reader, CheckLine) else reader
        params: dict[str, Param] = {"port": cfg.port, "baud": cfg.baud}
        line = reader if isinstance(reader, CheckLine) else CheckLine(
            "reader.open", OK, "reader.serial_ok", params
        )  # fmt: skip
    if opened is None:
        return [line]
    try:
        return [line, scan_line(settings, opts, cache, opened)]
    finally:
        opened.close()


def _open_camera(
    settings: GateSettings, make: Callable[[], PassReader]
) -> tuple[PassReader | None, CheckLine]:
    """Open the camera, wait for a first frame, and time its frames for one second."""
    from edge.devices.camera import CameraReader  # cv2 only where there is a camera

    cfg = settings.reader
    params: dict[str, Param] = {"source": cfg.source, "timeout": cfg.stall_timeout_s}
    try:
        camera = make()
    except DEVICE_ERRORS as exc:
        params["error"] = str(exc)
        return None, CheckLine("reader.open", FAIL, "camera.error", params, "camera.error")
    assert isinstance(camera, CameraReader)  # what factory.reader_factory builds for "camera"
    deadline = time.monotonic() + cfg.stall_timeout_s
    while (frame := camera.last_frame()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if frame is None:
        camera.close()
        return None, CheckLine("reader.open", FAIL, "camera.no_frame", params, "camera.no_frame")
    before = camera.frames
    time.sleep(FRAME_RATE_WINDOW_S)
    fps = (camera.frames - before) / FRAME_RATE_WINDOW_S
    params |= {"width": int(frame.shape[1]), "height": int(frame.shape[0]), "fps": fps}
    return camera, CheckLine("reader.open", OK, "camera.ok", params)


def scan_line(
    settings: GateSettings, opts: GateCheckOptions, cache: GateCache | None, reader: PassReader
) -> CheckLine:
    """With --interactive: one shown code read and decided as the gate would."""
    if not opts.interactive or opts.present is None:
        return CheckLine("reader.scan", SKIP, "scan.skipped")
    if cache is None:
        return CheckLine("reader.scan", SKIP, "blocked")  # the store line says why
    if opts.say is not None:
        opts.say("prompt.scan", {"wait": round(opts.scan_wait_s)})
    try:
        text = reader.read(opts.scan_wait_s)
    except DEVICE_ERRORS as exc:
        return CheckLine("reader.scan", FAIL, "device.failed", {"error": str(exc)}, "device.failed")
    if text is None:
        waited = {"wait": round(opts.scan_wait_s)}
        return CheckLine("reader.scan", FAIL, "scan.nothing", waited, "scan.nothing")
    decision, seq = opts.present(settings, cache, text, _temperature_for_scan(settings))
    params: dict[str, Param] = {
        "verdict": "GRANT" if decision.granted else "DENY",
        "reason": decision.reason.value,
        "pass_id": decision.pass_id or "-",
        "seq": seq if seq is not None else "-",
    }
    if decision.reason is Reason.MALFORMED:
        return CheckLine("reader.scan", WARN, "scan.not_a_pass", params, "scan.not_a_pass")
    return CheckLine("reader.scan", OK, "scan.decided" if seq else "scan.decided_dry", params)


def _temperature_for_scan(settings: GateSettings) -> float | None:
    """One reading to decide the scanned pass with, where the gate measures temperature."""
    make = factory.thermometer_factory(settings.thermometer)
    if make is None or settings.gate.temperature is TemperaturePolicy.OFF:
        return None
    try:
        sensor = make()
    except DEVICE_ERRORS:
        return None  # the thermometer line says why
    try:
        return sensor.read_celsius(settings.agent.temperature_timeout_s)
    except DEVICE_ERRORS:
        return None
    finally:
        sensor.close()


def thermometer_line(settings: GateSettings) -> CheckLine:
    cfg = settings.thermometer
    make = factory.thermometer_factory(cfg)
    if make is None:
        return CheckLine("thermometer", SKIP, "device.none")
    sensor = _open("thermometer", cfg.port, make)
    if isinstance(sensor, CheckLine):
        return sensor
    timeout = settings.agent.temperature_timeout_s
    params: dict[str, Param] = {"port": cfg.port, "timeout": timeout, "kind": cfg.kind,
                                "baud": cfg.baud, "unit": cfg.unit}  # fmt: skip
    try:
        reading = sensor.read_celsius(timeout)
    except DEVICE_ERRORS as exc:
        params["error"] = str(exc)
        return CheckLine("thermometer", FAIL, "device.failed", params, "device.no_answer")
    finally:
        sensor.close()
    if reading is None:
        return CheckLine("thermometer", FAIL, "thermo.silent", params, "thermo.silent")
    params["celsius"] = reading
    if BODY_MIN_C <= reading <= BODY_MAX_C:
        return CheckLine("thermometer", OK, "thermo.body", params)
    if AMBIENT_MIN_C <= reading < BODY_MIN_C:
        return CheckLine("thermometer", OK, "thermo.ambient", params, "thermo.ambient")
    return CheckLine("thermometer", FAIL, "thermo.implausible", params, "thermo.implausible")


def relay_line(settings: GateSettings, pulse: bool) -> CheckLine:
    """Opens the port; pulses (the door opens) only when asked to."""
    cfg = settings.relay
    make = factory.relay_factory(cfg)
    if make is None:
        return CheckLine("relay", SKIP, "device.none")
    relay = _open("relay", cfg.port, make)
    if isinstance(relay, CheckLine):
        return relay
    params: dict[str, Param] = {"port": cfg.port, "ms": cfg.pulse_ms, "channel": cfg.channel,
                                "unit": cfg.unit, "baud": cfg.baud}  # fmt: skip
    try:
        if not pulse:
            return CheckLine("relay", OK, "relay.opened", params)
        if relay.pulse(cfg.pulse_ms):
            return CheckLine("relay", OK, "relay.ok", params)
        return CheckLine("relay", FAIL, "relay.no_readback", params, "relay.no_readback")
    except DEVICE_ERRORS as exc:
        params["error"] = str(exc)
        return CheckLine("relay", FAIL, "device.failed", params, "device.no_answer")
    finally:
        relay.close()


def door_line(settings: GateSettings) -> CheckLine:
    cfg = settings.door
    make = factory.door_factory(cfg)
    if make is None:
        return CheckLine("door", SKIP, "device.none")
    door = _open("door", cfg.port, make)
    if isinstance(door, CheckLine):
        return door
    params: dict[str, Param] = {"port": cfg.port, "unit": cfg.unit, "input": cfg.input,
                                "baud": cfg.baud}  # fmt: skip
    try:
        if door.is_open():
            return CheckLine("door", WARN, "door.open", params, "door.open")
        return CheckLine("door", OK, "door.closed", params)
    except DEVICE_ERRORS as exc:
        params["error"] = str(exc)
        return CheckLine("door", FAIL, "device.failed", params, "device.no_answer")
    finally:
        door.close()
