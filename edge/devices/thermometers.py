"""Body-temperature sensors on serial ports: an ASCII line sensor, CJMCU-90614 boards, Modbus RTU.

Every kind shares one read path (``SampledThermometer.read_celsius``): wait up to ``timeout``
for a first reading, keep collecting for ``window_s`` (never past the timeout) until
``samples`` readings are in, return their median plus ``offset``. Readings outside
``limits`` are counted in ``rejected`` and never returned. Streaming sensors drop what they
buffered before the call, so a reading is never older than the person in front of the gate.

CJMCU-90614 (MLX90614-BCC behind an MCU, "CJMCU-MLX90614 serial output module"), as
documented by resellers of the board; nothing here has been checked on real hardware:

* 8N1; the board is sold as 9600/57600/115200 (several listings say the factory default is
  115200, so set ``baud`` to match the unit on site).
* Output frame, 9 bytes: ``66 66 mode len D1H D1L D2H D2L sum``. ``mode`` is 0x01 in
  continuous output, 0x02 in query output; ``len`` is 0x04 (data bytes); ``sum`` is the low
  byte of the sum of the 8 bytes before it. D1 is the object (body) temperature and D2 the
  ambient one (the order of the sister GY-MCU90614 board), each a big-endian count of
  0.01 °C, read as signed so that sub-zero ambient values survive.
* Commands, 4 bytes: ``66 66 cmd 56`` with cmd 0x01 continuous output, 0x02 query output,
  0x11/0x12/0x13 baud 9600/57600/115200. The driver sends 0x01 on open, so a board left in
  query mode starts streaming and no per-reading query is needed.
"""

from __future__ import annotations

import re
import statistics
import struct
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypedDict, Unpack

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from edge.devices.base import DeviceError
from edge.devices.serial_qr import (
    LineSplitter,
    close_port,
    decode_text,
    open_port,
    read_buffered,
    read_some,
    write_all,
)

DEFAULT_LIMITS = (-40.0, 125.0)
STALE_DRAIN_PASSES = 16
CJMCU_HEADER = b"\x66\x66"
CJMCU_FRAME_LEN = 9
CJMCU_CONTINUOUS = b"\x66\x66\x01\x56"


class Sampling(TypedDict, total=False):
    """Keyword options every thermometer takes (see SampledThermometer)."""

    offset: float
    samples: int
    window_s: float
    limits: tuple[float, float]


class SampledThermometer(ABC):
    """Median of N readings over a short window, plus offset and sanity limits; a Thermometer."""

    def __init__(
        self,
        *,
        offset: float = 0.0,
        samples: int = 5,
        window_s: float = 1.0,
        limits: tuple[float, float] = DEFAULT_LIMITS,
    ) -> None:
        if samples < 1:
            raise ValueError("samples must be at least 1")
        self.offset = offset
        self.samples = samples
        self.window_s = window_s
        self.limits = limits
        self.rejected = 0

    def read_celsius(self, timeout: float) -> float | None:
        """Return the calibrated median of up to N readings, or None when none came in time."""
        self._discard_stale()
        deadline = time.monotonic() + timeout
        window_end = deadline
        readings: list[float] = []
        while len(readings) < self.samples:
            remaining = min(deadline, window_end) - time.monotonic()
            if remaining <= 0:
                break
            value = self._next_raw(remaining)
            if value is None:
                continue
            if not self.limits[0] <= value <= self.limits[1]:
                self.rejected += 1
                continue
            if not readings:
                window_end = min(deadline, time.monotonic() + self.window_s)
            readings.append(value)
        if not readings:
            return None
        return round(statistics.median(readings) + self.offset, 2)

    @abstractmethod
    def _discard_stale(self) -> None:
        """Forget readings that arrived before this call."""

    @abstractmethod
    def _next_raw(self, timeout: float) -> float | None:
        """Return the next uncalibrated reading, or None when none arrived (yet)."""

    @abstractmethod
    def close(self) -> None:
        """Release the port."""


class _StreamingThermometer(SampledThermometer):
    """A sensor that talks on its own; subclasses turn bytes into readings."""

    def __init__(self, port: str, baud: int, **sampling: Unpack[Sampling]) -> None:
        super().__init__(**sampling)
        self.path = port
        self._ready: list[float] = []
        self._port = open_port(port, baud)

    def _discard_stale(self) -> None:
        # Parse the backlog instead of flushing it: a flush can cut a line or frame in half,
        # and the tail of "36.5" would read as a plausible 6.5.
        for _ in range(STALE_DRAIN_PASSES):
            data = read_buffered(self._port)
            if not data:
                break
            self._parse(data)
        self._ready.clear()

    def _next_raw(self, timeout: float) -> float | None:
        if not self._ready:
            self._ready.extend(self._parse(read_some(self._port)))
        return self._ready.pop(0) if self._ready else None

    def close(self) -> None:
        close_port(self._port)

    @abstractmethod
    def _parse(self, data: bytes) -> list[float]:
        """Return the readings completed by data, counting what was discarded."""


class AsciiThermometer(_StreamingThermometer):
    """A sensor printing one reading per line; ``pattern`` must match the whole line."""

    def __init__(
        self,
        port: str,
        baud: int,
        pattern: str = r"(?P<c>-?\d+(?:\.\d+)?)",
        **sampling: Unpack[Sampling],
    ) -> None:
        self._pattern = re.compile(pattern)
        if "c" not in self._pattern.groupindex:
            raise ValueError("pattern needs a named group 'c' for degrees Celsius")
        self._lines = LineSplitter(256)
        super().__init__(port, baud, **sampling)

    def _parse(self, data: bytes) -> list[float]:
        out: list[float] = []
        for line in self._lines.feed(data):
            text = None if line is None else decode_text(line)
            # fullmatch: a garbled line that merely contains digits must not become a reading.
            match = None if text is None else self._pattern.fullmatch(text.strip())
            if match is None:
                self.rejected += 1
            else:
                out.append(float(match["c"]))
        return out


class CjmcuThermometer(_StreamingThermometer):
    """A CJMCU-90614 (MLX90614) serial board streaming 9-byte frames; see the module docstring."""

    def __init__(self, port: str, baud: int = 9600, **sampling: Unpack[Sampling]) -> None:
        self._buf = bytearray()
        super().__init__(port, baud, **sampling)
        write_all(self._port, CJMCU_CONTINUOUS)

    def _parse(self, data: bytes) -> list[float]:
        self._buf += data
        out: list[float] = []
        while True:
            start = self._buf.find(CJMCU_HEADER)
            if start < 0:
                # Keep a trailing 0x66: it may be the first half of the next header.
                keep = 1 if self._buf.endswith(CJMCU_HEADER[:1]) else 0
                self._drop(len(self._buf) - keep)
                return out
            self._drop(start)
            if len(self._buf) < CJMCU_FRAME_LEN:
                return out
            frame = bytes(self._buf[:CJMCU_FRAME_LEN])
            if frame[2] in (1, 2) and frame[3] == 4 and sum(frame[:8]) & 0xFF == frame[8]:
                out.append(struct.unpack(">h", frame[4:6])[0] / 100)
                del self._buf[:CJMCU_FRAME_LEN]
            else:
                # Bad frame: skip one byte only, a real header may start inside it.
                self.rejected += 1
                del self._buf[:1]

    def _drop(self, count: int) -> None:
        if count > 0:
            self.rejected += 1
            del self._buf[:count]


@dataclass
class _Bus:
    client: ModbusSerialClient
    baud: int
    users: int = 0


class ModbusLink:
    """One unit on a Modbus RTU bus; failures (no port, no answer, error reply) are DeviceError.

    Links to the same port share one pymodbus client: a relay board's coils and its door
    input sit on one RS-485 adapter, which only one client may hold open (exclusive lock).
    """

    _buses: ClassVar[dict[str, _Bus]] = {}
    _buses_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, port: str, baud: int, unit: int, *, timeout_s: float = 0.5) -> None:
        self.path = port
        self.unit = unit
        self._closed = False
        with self._buses_lock:
            bus = self._buses.get(port)
            if bus is None:
                client = ModbusSerialClient(
                    port, framer=FramerType.RTU, baudrate=baud, timeout=timeout_s, retries=1
                )
                if not client.connect():
                    raise DeviceError(f"cannot open {port}")
                bus = self._buses[port] = _Bus(client, baud)
            elif bus.baud != baud:
                raise ValueError(f"{port} is already open at {bus.baud} baud")
            bus.users += 1
        self._client = bus.client

    def call(self, request: Callable[..., ModbusPDU], *args: Any) -> ModbusPDU:
        """Run one client request (e.g. ``link.client.read_coils``) against this unit."""
        try:
            response = request(*args, device_id=self.unit)
        except (ModbusException, OSError) as exc:
            raise DeviceError(f"modbus unit {self.unit} on {self.path}: {exc}") from exc
        if response.isError():
            raise DeviceError(f"modbus unit {self.unit} on {self.path} answered {response}")
        return response

    @property
    def client(self) -> ModbusSerialClient:
        """The shared pymodbus client, for its request methods."""
        return self._client

    def close(self) -> None:
        """Let go of the bus; the port closes when its last link does."""
        with self._buses_lock:
            if self._closed:
                return
            self._closed = True
            bus = self._buses[self.path]
            bus.users -= 1
            if bus.users == 0:
                del self._buses[self.path]
                bus.client.close()  # type: ignore[no-untyped-call]  # pymodbus leaves it bare


class ModbusThermometer(SampledThermometer):
    """A Modbus RTU sensor polled for one signed 16-bit register times ``scale``."""

    def __init__(
        self,
        port: str,
        baud: int,
        unit: int,
        register: int,
        scale: float = 0.1,
        *,
        table: Literal["holding", "input"] = "holding",
        **sampling: Unpack[Sampling],
    ) -> None:
        super().__init__(**sampling)
        self.register = register
        self.scale = scale
        self._link = ModbusLink(port, baud, unit)
        client = self._link.client
        self._read = (
            client.read_holding_registers if table == "holding" else client.read_input_registers
        )
        self._next_poll = 0.0

    def _discard_stale(self) -> None:
        # Polled, so nothing is buffered; only the poll spacing restarts with each call.
        self._next_poll = 0.0

    def _next_raw(self, timeout: float) -> float | None:
        # Spread the polls over the window so the median covers it rather than one instant.
        wait = self._next_poll - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout))
            if wait > timeout:
                return None
        self._next_poll = time.monotonic() + self.window_s / self.samples
        raw = self._link.call(self._read, self.register).registers[0]
        signed: int = struct.unpack(">h", struct.pack(">H", raw))[0]
        return signed * self.scale

    def close(self) -> None:
        self._link.close()
