"""Gate hardware simulated on real ptys: the drivers open them exactly as they open /dev/ttyUSB0.

Each simulator owns a pty pair and links ``<link_dir>/<name>`` to the slave side, so the
configured path stays the same across ``unplug()`` / ``replug()`` even though every replug
gets a new /dev/pts/N. ``unplug()`` closes the pty and removes the link: an open driver
sees I/O errors and reopening fails, as when a USB adapter is pulled.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import threading
import time
import tty
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from edge.devices.relays import LCUS_START
from edge.devices.thermometers import CJMCU_HEADER

POLL_S = 0.005


class PtySim:
    """Base simulator: a pty at a stable path, served by a background thread."""

    def __init__(self, link_dir: str | Path, name: str) -> None:
        self.path = str(Path(link_dir) / name)
        self.tty: str | None = None
        self._lock = threading.RLock()
        self._master: int | None = None
        self._slave: int | None = None
        self._generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Plug the device in and start serving it."""
        self.replug()
        self._thread = threading.Thread(target=self._serve, name=f"sim {self.path}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and unplug."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.unplug()

    def unplug(self) -> None:
        """Close the pty and remove the path, like pulling the USB plug."""
        with self._lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None
            self._generation += 1
            self.tty = None
            Path(self.path).unlink(missing_ok=True)

    def replug(self) -> None:
        """Make the device reachable again at the same path (a new pty underneath)."""
        with self._lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            # Raw from the start: a cooked slave would echo and turn CR into LF before the
            # driver opens the port and sets raw mode itself.
            tty.setraw(slave)
            os.set_blocking(master, False)
            # The simulator keeps the slave open so the master never reads EIO between drivers.
            self._master, self._slave = master, slave
            self._generation += 1
            self.tty = os.ttyname(slave)
            staging = f"{self.path}.new"
            Path(staging).unlink(missing_ok=True)
            os.symlink(self.tty, staging)
            os.replace(staging, self.path)

    def send_raw(self, data: bytes) -> None:
        """Put bytes on the line as the device would (garbage, broken frames, anything)."""
        with self._lock:
            if self._master is None:
                return
            # A full buffer loses bytes, like a UART overrun.
            with contextlib.suppress(OSError):
                os.write(self._master, data)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                fd, generation = self._master, self._generation
            if fd is None:
                self._stop.wait(POLL_S)
                continue
            data = b""
            try:
                readable, _, _ = select.select([fd], [], [], POLL_S)
            except (OSError, ValueError):
                readable = []  # unplugged while we waited
            if readable:
                with self._lock:
                    if generation == self._generation:
                        try:
                            data = os.read(fd, 4096)
                        except OSError:
                            data = b""
            if data:
                self._on_rx(data)
            self._tick(time.monotonic())

    def _on_rx(self, data: bytes) -> None:
        """Handle bytes the driver sent."""

    def _tick(self, now: float) -> None:
        """Do periodic work (streaming) on the serving thread."""


class QrHeadSim(PtySim):
    """A QR reader head that sends each scanned text followed by a terminator."""

    def __init__(self, link_dir: str | Path, name: str = "ttyQR0", terminator: str = "\r") -> None:
        super().__init__(link_dir, name)
        self.terminator = terminator

    def scan(self, text: str, terminator: str | None = None) -> None:
        """Send text as if a code had just been decoded."""
        ending = self.terminator if terminator is None else terminator
        self.send_raw((text + ending).encode("utf-8"))


class TemperatureScript:
    """What a simulated sensor reports next: one value, or a sequence repeated forever."""

    def __init__(self, celsius: float) -> None:
        self._lock = threading.Lock()
        self._values = [celsius]
        self._index = 0

    def set(self, celsius: float) -> None:
        """Report this value from now on."""
        self.set_sequence([celsius])

    def set_sequence(self, values: Sequence[float]) -> None:
        """Report these values in turn, starting over after the last."""
        if not values:
            raise ValueError("need at least one value")
        with self._lock:
            self._values = list(values)
            self._index = 0

    def next(self) -> float:
        """Return the next value to report."""
        with self._lock:
            value = self._values[self._index % len(self._values)]
            self._index += 1
            return value


class ScriptedTemperature:
    """What every simulated thermometer offers tests: the temperature it will report."""

    script: TemperatureScript

    def set_temperature(self, celsius: float) -> None:
        """Report this temperature from now on."""
        self.script.set(celsius)

    def set_sequence(self, values: Sequence[float]) -> None:
        """Report these temperatures in turn, repeating."""
        self.script.set_sequence(values)


class _StreamingThermoSim(ScriptedTemperature, PtySim):
    def __init__(self, link_dir: str | Path, name: str, rate_hz: float, celsius: float) -> None:
        super().__init__(link_dir, name)
        self.rate_hz = rate_hz
        self.script = TemperatureScript(celsius)
        self._next_emit = 0.0

    def _streaming(self) -> bool:
        return self.rate_hz > 0

    def _tick(self, now: float) -> None:
        if self._streaming() and now >= self._next_emit:
            self._next_emit = now + 1 / self.rate_hz
            self.send_raw(self._encode(self.script.next()))

    def _encode(self, celsius: float) -> bytes:
        raise NotImplementedError


class AsciiThermoSim(_StreamingThermoSim):
    """A sensor printing one reading per line at rate_hz (0: silent)."""

    def __init__(
        self,
        link_dir: str | Path,
        name: str = "ttyTHA0",
        *,
        rate_hz: float = 20.0,
        celsius: float = 36.5,
        fmt: str = "{c:.2f}\r\n",
    ) -> None:
        super().__init__(link_dir, name, rate_hz, celsius)
        self.fmt = fmt

    def _encode(self, celsius: float) -> bytes:
        return self.fmt.format(c=celsius).encode("ascii")


def cjmcu_frame(
    celsius: float, *, mode: int = 1, ambient: float = 25.0, bad_checksum: bool = False
) -> bytes:
    """Return a CJMCU-90614 output frame (object temperature first, then ambient)."""
    body = CJMCU_HEADER + bytes([mode, 4])
    body += struct.pack(">hh", round(celsius * 100), round(ambient * 100))
    checksum = (sum(body) + (1 if bad_checksum else 0)) & 0xFF
    return body + bytes([checksum])


class CjmcuThermoSim(_StreamingThermoSim):
    """A CJMCU-90614 board: streams frames in continuous mode, answers 66 66 02 56 in query mode."""

    def __init__(
        self,
        link_dir: str | Path,
        name: str = "ttyTHC0",
        *,
        rate_hz: float = 20.0,
        celsius: float = 36.5,
        continuous: bool = True,
    ) -> None:
        super().__init__(link_dir, name, rate_hz, celsius)
        self.continuous = continuous
        self.commands: list[int] = []
        self._rx = bytearray()

    def _streaming(self) -> bool:
        return self.continuous and self.rate_hz > 0

    def _encode(self, celsius: float) -> bytes:
        return cjmcu_frame(celsius)

    def _on_rx(self, data: bytes) -> None:
        self._rx += data
        while (start := self._rx.find(CJMCU_HEADER)) >= 0 and len(self._rx) >= start + 4:
            command, end = self._rx[start + 2], self._rx[start + 3]
            del self._rx[: start + 4]
            if end != 0x56:
                continue
            self.commands.append(command)
            if command == 0x01:
                self.continuous = True
            elif command == 0x02:
                self.continuous = False
                self.send_raw(cjmcu_frame(self.script.next(), mode=2))
        del self._rx[:-3]  # what is left can only be the start of a command


class LcusRelaySim(PtySim):
    """An LCUS board: A0 switch frames, FF status query, a transition history and a stick switch."""

    def __init__(self, link_dir: str | Path, name: str = "ttyRL0", channels: int = 2) -> None:
        super().__init__(link_dir, name)
        self.channels = channels
        self.state = dict.fromkeys(range(1, channels + 1), False)
        self.history: list[tuple[float, int, bool]] = []
        self.rejected = 0
        self._stuck = False
        self._rx = bytearray()

    def stick(self, stuck: bool = True) -> None:
        """Ignore switch commands from now on (welded contact, dead coil); status still answers."""
        self._stuck = stuck

    def is_on(self, channel: int) -> bool:
        """Return whether the channel is on."""
        with self._lock:
            return self.state[channel]

    def _on_rx(self, data: bytes) -> None:
        self._rx += data
        while self._rx:
            if self._rx[0] == 0xFF:
                del self._rx[:1]
                self.send_raw(self._status())
            elif self._rx[0] == LCUS_START:
                if len(self._rx) < 4:
                    return
                self._switch(bytes(self._rx[:4]))
                del self._rx[:4]
            else:
                self.rejected += 1
                del self._rx[:1]

    def _switch(self, frame: bytes) -> None:
        _, channel, op, checksum = frame
        if sum(frame[:3]) & 0xFF != checksum or op > 1 or channel not in self.state:
            self.rejected += 1
            return
        with self._lock:
            if self._stuck or self.state[channel] == bool(op):
                return
            self.state[channel] = bool(op)
            self.history.append((time.monotonic(), channel, bool(op)))

    def _status(self) -> bytes:
        with self._lock:
            lines = [f"CH{ch}: {'ON ' if on else 'OFF'}\r\n" for ch, on in self.state.items()]
        return "".join(lines).encode("ascii")
