"""Build device drivers from the gate config sections; one place knows every `kind`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.devices.base import DoorInput, PassReader, Relay, Thermometer


class _DeviceSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: str = Field("", description="Serial port path, e.g. /dev/ttyUSB0.")
    baud: int = Field(9600, description="Serial speed.")

    @model_validator(mode="after")
    def _port_when_serial(self) -> _DeviceSection:
        kind = getattr(self, "kind", "none")
        if kind not in ("none", "camera") and not self.port:
            raise ValueError(f"kind {kind!r} needs a port")
        return self


class ReaderSection(_DeviceSection):
    kind: Literal["serial", "camera", "none"] = Field("none", description="QR source.")
    source: str = Field("0", description="Camera: index, /dev/video*, rtsp:// URL, or file/dir.")
    max_fps: float = Field(25.0, gt=0, description="Camera: frames decoded per second at most.")
    stall_timeout_s: float = Field(5.0, gt=0, description="Camera: no frame this long is a fault.")
    blind_fps: float = Field(
        6.0, ge=0, description="Camera: whole-frame second looks per second at most (0: never)."
    )
    soft_fps: float = Field(
        2.0, ge=0, description="Camera: soft last looks (20-375 ms each) per second at most."
    )


class ThermometerSection(_DeviceSection):
    kind: Literal["ascii", "cjmcu", "modbus", "none"] = Field("none", description="Sensor kind.")
    pattern: str = Field(r"(?P<c>-?\d+(?:\.\d+)?)", description="ascii: regex with group c.")
    unit: int = Field(1, description="modbus: device id.")
    address: int = Field(0, description="modbus: register address holding the temperature.")
    scale: float = Field(0.1, description="modbus: °C per register unit.")
    offset: float = Field(0.0, description="Calibration added to every reading, °C.")
    samples: int = Field(5, ge=1, description="Median over up to this many readings.")
    window_s: float = Field(0.5, gt=0, description="...collected within this window.")


class RelaySection(_DeviceSection):
    kind: Literal["lcus", "modbus", "none"] = Field("none", description="Door strike relay.")
    channel: int = Field(1, ge=1, description="lcus: relay channel; modbus: coil address.")
    unit: int = Field(1, description="modbus: device id.")
    pulse_ms: int = Field(1000, ge=50, le=30_000, description="How long the strike opens.")


class DoorSection(_DeviceSection):
    kind: Literal["modbus", "none"] = Field("none", description="Door contact input.")
    unit: int = Field(1, description="modbus: device id.")
    input: int = Field(0, description="modbus: discrete input address.")
    open_when: bool = Field(True, description="Input value that means the door is open.")
    held_open_s: float = Field(30.0, gt=0, description="Open longer than this: door_held_open.")
    grant_grace_s: float = Field(10.0, gt=0, description="Opening this long after a grant is fine.")


def reader_factory(cfg: ReaderSection, base: Path) -> Callable[[], PassReader] | None:
    """A callable that opens the configured reader (raising DeviceError), or None for `none`."""
    if cfg.kind == "serial":
        from edge.devices.serial_qr import SerialQrReader

        return lambda: SerialQrReader(cfg.port, cfg.baud)
    if cfg.kind == "camera":
        from edge.devices.camera import CameraReader

        src: int | str | Path = int(cfg.source) if cfg.source.isdigit() else cfg.source
        if isinstance(src, str) and "://" not in src and not src.startswith("/dev/"):
            src = base / src
        return lambda: CameraReader(
            src,
            max_fps=cfg.max_fps,
            stall_timeout=cfg.stall_timeout_s,
            blind_fps=cfg.blind_fps,
            soft_fps=cfg.soft_fps,
        )
    return None


def thermometer_factory(cfg: ThermometerSection) -> Callable[[], Thermometer] | None:
    from edge.devices import thermometers as t

    sampling: t.Sampling = {"offset": cfg.offset, "samples": cfg.samples, "window_s": cfg.window_s}
    if cfg.kind == "ascii":
        return lambda: t.AsciiThermometer(cfg.port, cfg.baud, cfg.pattern, **sampling)
    if cfg.kind == "cjmcu":
        return lambda: t.CjmcuThermometer(cfg.port, cfg.baud, **sampling)
    if cfg.kind == "modbus":
        return lambda: t.ModbusThermometer(
            cfg.port, cfg.baud, cfg.unit, cfg.address, cfg.scale, **sampling
        )
    return None


def relay_factory(cfg: RelaySection) -> Callable[[], Relay] | None:
    from edge.devices import relays

    if cfg.kind == "lcus":
        return lambda: relays.LcusRelay(cfg.port, cfg.channel, cfg.baud)
    if cfg.kind == "modbus":
        return lambda: relays.ModbusRelay(cfg.port, cfg.baud, cfg.unit, cfg.channel)
    return None


def door_factory(cfg: DoorSection) -> Callable[[], DoorInput] | None:
    from edge.devices import relays

    if cfg.kind == "modbus":
        return lambda: relays.ModbusDoorInput(
            cfg.port, cfg.baud, cfg.unit, cfg.input, open_when=cfg.open_when
        )
    return None
