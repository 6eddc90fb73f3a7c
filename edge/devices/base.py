"""The device interfaces the agent talks to; every driver and simulator implements one of them."""

from __future__ import annotations

from typing import Protocol


class DeviceError(Exception):
    """A device failed (port vanished, timeout, dead stream); the agent journals and reconnects."""


class PassReader(Protocol):
    """A QR source: a serial reader head or a camera with a decoder."""

    def read(self, timeout: float) -> str | None:
        """Return the next decoded pass text, or None when nothing arrived within timeout."""
        ...

    def close(self) -> None: ...


class Thermometer(Protocol):
    """A body-temperature sensor; readings are in degrees Celsius with calibration applied."""

    def read_celsius(self, timeout: float) -> float | None:
        """Return one calibrated reading (median over the device's window), or None on timeout."""
        ...

    def close(self) -> None: ...


class Relay(Protocol):
    """The door strike relay, with read-back of its real state."""

    def pulse(self, ms: int) -> bool:
        """Close the relay for ms milliseconds; True when read-back confirmed it switched on."""
        ...

    def hold(self) -> bool:
        """Close the relay and leave it closed (emergency release); True when read back ON."""
        ...

    def release(self) -> None:
        """Open the relay now (door locked), e.g. on shutdown."""
        ...

    def close(self) -> None: ...


class DoorInput(Protocol):
    """The door contact: True while the door stands open."""

    def is_open(self) -> bool: ...

    def close(self) -> None: ...
