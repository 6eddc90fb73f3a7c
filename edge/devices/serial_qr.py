"""Serial QR reader head, plus the pyserial plumbing every serial driver here shares.

A reader head in serial mode sends each decoded text followed by CR, LF or CRLF (the
terminator is a setting on most heads, so all three are accepted). The terminator is
stripped here, at the reader, and nothing else is: the pass codec is strict (a trailing CR
is not base45, and a space is), so what reaches the policy is exactly what the QR held.
Noise on the line
(boot banners, a flaky USB cable) must never reach the policy as a pass: a line that is
not valid UTF-8, holds control characters, or runs past ``max_len`` bytes is dropped and
counted in ``rejected``.
"""

from __future__ import annotations

import contextlib
import re
import time
import unicodedata
from typing import Any

import serial

from edge.devices.base import DeviceError

READ_SLICE_S = 0.05
WRITE_TIMEOUT_S = 1.0
MAX_LINE_BYTES = 4096
_TERMINATOR = re.compile(rb"[\r\n]")


def open_port(path: str, baud: int) -> Any:
    """Open a serial port exclusively in raw 8N1 mode, or raise DeviceError."""
    try:
        return serial.Serial(
            path,
            baudrate=baud,
            timeout=READ_SLICE_S,
            write_timeout=WRITE_TIMEOUT_S,
            exclusive=True,
        )
    except (OSError, ValueError) as exc:
        raise DeviceError(f"cannot open {path}: {exc}") from exc


def read_some(port: Any) -> bytes:
    """Return what arrived within one short read slice (maybe nothing), or raise DeviceError."""
    try:
        data: bytes = port.read(max(1, port.in_waiting))
    except OSError as exc:
        # A vanished USB adapter (or a hung-up pty) shows up here as EIO or as an empty read.
        raise DeviceError(f"read from {port.port} failed: {exc}") from exc
    return data


def read_buffered(port: Any) -> bytes:
    """Return the bytes already in the port's buffer without waiting, or raise DeviceError."""
    try:
        waiting: int = port.in_waiting
        data: bytes = port.read(waiting) if waiting else b""
    except OSError as exc:
        raise DeviceError(f"read from {port.port} failed: {exc}") from exc
    return data


def write_all(port: Any, data: bytes) -> None:
    """Write data to the port, or raise DeviceError."""
    try:
        port.write(data)
    except OSError as exc:
        raise DeviceError(f"write to {port.port} failed: {exc}") from exc


def discard_input(port: Any) -> None:
    """Drop bytes the device sent before now, or raise DeviceError."""
    try:
        port.reset_input_buffer()
    except OSError as exc:
        raise DeviceError(f"flush of {port.port} failed: {exc}") from exc


def close_port(port: Any) -> None:
    """Close the port, ignoring errors from a device that is already gone."""
    with contextlib.suppress(OSError):
        port.close()


class LineSplitter:
    """Cuts a byte stream into lines ended by CR, LF or CRLF; an overlong line comes out as None."""

    def __init__(self, max_len: int = MAX_LINE_BYTES) -> None:
        self.max_len = max_len
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | None]:
        """Return the lines completed by data; empty lines are dropped, overlong ones are None."""
        out: list[bytes | None] = []
        *complete, tail = _TERMINATOR.split(data)
        for part in complete:
            self._take(part, out)
            if self._buf:
                out.append(bytes(self._buf))
            self._buf.clear()
            self._skipping = False
        self._take(tail, out)
        return out

    def _take(self, part: bytes, out: list[bytes | None]) -> None:
        if self._skipping:
            return
        self._buf += part
        if len(self._buf) > self.max_len:
            # Skip to the next terminator so the tail of the monster is not read as a line.
            out.append(None)
            self._buf.clear()
            self._skipping = True


def decode_text(line: bytes) -> str | None:
    """Return the line as text, or None when it is not UTF-8 or holds control characters."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in text):
        return None
    return text


class SerialQrReader:
    """A QR reader head on a serial port; implements PassReader."""

    def __init__(self, port: str, baud: int = 9600, *, max_len: int = MAX_LINE_BYTES) -> None:
        self.path = port
        self.rejected = 0
        self._lines = LineSplitter(max_len)
        self._pending: list[str] = []
        self._port = open_port(port, baud)

    def read(self, timeout: float) -> str | None:
        """Return the next scanned text, or None when nothing arrived within timeout."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            if time.monotonic() >= deadline:
                return None
            for line in self._lines.feed(read_some(self._port)):
                text = None if line is None else decode_text(line)
                if text is None:
                    self.rejected += 1
                else:
                    self._pending.append(text)
        return self._pending.pop(0)

    def close(self) -> None:
        """Release the port."""
        close_port(self._port)
