"""Door strike relays with read-back (LCUS USB boards, Modbus coils), and the Modbus door contact.

LCUS boards (LC Technology LCUS-1/2/4/8, CH340, 9600 8N1), as documented by the vendor and
by people driving them from Python; not checked on real hardware here:

* Switch: ``A0 ch op sum`` with ch counted from 1, op 0x01 on / 0x00 off and
  sum = (0xA0 + ch + op) & 0xFF. The board sends nothing back.
* Status: the single byte ``FF``, answered in ASCII with one line per channel,
  ``CH1: ON \\r\\nCH2: OFF\\r\\n`` ("ON" is padded to three characters). Users report the
  first answer after a switch can be stale, so an OFF answer is asked again once before it
  counts. Some single-channel LCUS-1 batches ignore ``FF``; on those every pulse reports
  False (unlock failure), which fails loud rather than claiming an unchecked unlock.
* The boards have no inputs, so the door contact is only offered over Modbus
  (``ModbusDoorInput``, FC02).
"""

from __future__ import annotations

import re
import threading
import time

from edge.devices.serial_qr import (
    LineSplitter,
    close_port,
    discard_input,
    open_port,
    read_some,
    write_all,
)
from edge.devices.thermometers import ModbusLink

LCUS_START = 0xA0
LCUS_QUERY = b"\xff"
_LCUS_STATUS = re.compile(rb"\s*CH(\d+):\s*(ON|OFF)\s*")
STALE_RETRY_S = 0.05


def lcus_frame(channel: int, on: bool) -> bytes:
    """Return the LCUS switch command for one channel."""
    op = 1 if on else 0
    return bytes([LCUS_START, channel, op, (LCUS_START + channel + op) & 0xFF])


def _hold_until(deadline: float) -> None:
    wait = deadline - time.monotonic()
    if wait > 0:
        time.sleep(wait)


class LcusRelay:
    """One channel of an LCUS USB relay board; implements Relay."""

    def __init__(
        self, port: str, channel: int, baud: int = 9600, *, readback_timeout: float = 0.3
    ) -> None:
        if not 1 <= channel <= 0xFE:
            raise ValueError("LCUS channels are numbered from 1")
        self.path = port
        self.channel = channel
        self.readback_timeout = readback_timeout
        self.rejected = 0
        self._lock = threading.Lock()
        self._port = open_port(port, baud)

    def pulse(self, ms: int) -> bool:
        """Switch on, read back, hold for ms, switch off; True when the board reported ON."""
        with self._lock:
            started = time.monotonic()
            write_all(self._port, lcus_frame(self.channel, on=True))
            try:
                confirmed = self._reads_on()
                _hold_until(started + ms / 1000)
            finally:
                write_all(self._port, lcus_frame(self.channel, on=False))
            return confirmed

    def hold(self) -> bool:
        """Switch on and leave it on; True when the board reported ON."""
        with self._lock:
            write_all(self._port, lcus_frame(self.channel, on=True))
            return self._reads_on()

    def release(self) -> None:
        """Switch the channel off."""
        with self._lock:
            write_all(self._port, lcus_frame(self.channel, on=False))

    def state(self) -> bool | None:
        """Return the channel state as the board reports it, or None when it did not answer."""
        with self._lock:
            return self._query()

    def close(self) -> None:
        """Release the port."""
        close_port(self._port)

    def _reads_on(self) -> bool:
        if self._query():
            return True
        time.sleep(STALE_RETRY_S)
        return self._query() is True

    def _query(self) -> bool | None:
        discard_input(self._port)
        write_all(self._port, LCUS_QUERY)
        lines = LineSplitter(256)
        deadline = time.monotonic() + self.readback_timeout
        while time.monotonic() < deadline:
            for line in lines.feed(read_some(self._port)):
                match = None if line is None else _LCUS_STATUS.fullmatch(line)
                if match is None:
                    self.rejected += 1
                elif int(match[1]) == self.channel:
                    return match[2] == b"ON"
        return None


class ModbusRelay:
    """A Modbus RTU relay output: FC05 to switch, FC01 to read back; implements Relay."""

    def __init__(self, port: str, baud: int, unit: int, coil: int) -> None:
        self.coil = coil
        self._lock = threading.Lock()
        self._link = ModbusLink(port, baud, unit)

    def pulse(self, ms: int) -> bool:
        """Switch on, read back, hold for ms, switch off; True when the coil read back ON."""
        client = self._link.client
        with self._lock:
            started = time.monotonic()
            self._link.call(client.write_coil, self.coil, True)
            try:
                confirmed = bool(self._link.call(client.read_coils, self.coil).bits[0])
                _hold_until(started + ms / 1000)
            finally:
                self._link.call(client.write_coil, self.coil, False)
            return confirmed

    def hold(self) -> bool:
        """Switch on and leave it on; True when the coil read back ON."""
        client = self._link.client
        with self._lock:
            self._link.call(client.write_coil, self.coil, True)
            return bool(self._link.call(client.read_coils, self.coil).bits[0])

    def release(self) -> None:
        """Switch the coil off."""
        with self._lock:
            self._link.call(self._link.client.write_coil, self.coil, False)

    def close(self) -> None:
        """Release the port."""
        self._link.close()


class ModbusDoorInput:
    """A door contact on a Modbus RTU discrete input (FC02); implements DoorInput."""

    def __init__(
        self, port: str, baud: int, unit: int, discrete_input: int, *, open_when: bool = True
    ) -> None:
        self.discrete_input = discrete_input
        # A normally-closed reed contact reads False while the door is open.
        self.open_when = open_when
        self._link = ModbusLink(port, baud, unit)

    def is_open(self) -> bool:
        """Return True while the door stands open."""
        response = self._link.call(self._link.client.read_discrete_inputs, self.discrete_input)
        return bool(response.bits[0]) == self.open_when

    def close(self) -> None:
        """Release the port."""
        self._link.close()
