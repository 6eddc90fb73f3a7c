"""A serial text display (an LED or LCD board above the reader) with a one-line protocol.

Each prompt is one line: ``<prompt id> TAB <text> LF``, in UTF-8 or GB18030, e.g.
``granted\t请通行\n``. A board that shows only text ignores the id; one with icons or colours
keys them on it. Documented in docs/operations.md.
"""

from __future__ import annotations

import serial

from edge.devices.base import DeviceError
from edge.feedback import Prompt


class SerialTextDisplay:
    def __init__(self, port: str, baud: int, encoding: str = "utf-8") -> None:
        try:
            self._serial = serial.Serial(port, baud, timeout=0.5, write_timeout=0.5)
        except serial.SerialException as exc:
            raise DeviceError(f"cannot open text display {port}: {exc}") from exc
        self.encoding = encoding

    def announce(self, prompt: Prompt, text: str) -> None:
        line = f"{prompt.value}\t{text}\n".encode(self.encoding)
        try:
            self._serial.write(line)
            self._serial.flush()
        except serial.SerialException as exc:
            raise DeviceError(f"text display write failed: {exc}") from exc

    def close(self) -> None:
        self._serial.close()
