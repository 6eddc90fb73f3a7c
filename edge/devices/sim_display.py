"""A serial text display on a real pty: records every line the agent sends it."""

from __future__ import annotations

import threading
from pathlib import Path

from edge.devices.sim_serial import PtySim


class TextDisplaySim(PtySim):
    """Collects ``<prompt>\\t<text>`` lines, decoded with the board's encoding."""

    def __init__(
        self, link_dir: str | Path, name: str = "ttyDISP0", encoding: str = "utf-8"
    ) -> None:
        super().__init__(link_dir, name)
        self.encoding = encoding
        self.lines: list[tuple[str, str]] = []
        self._buffer = b""
        self._lines_lock = threading.Lock()

    def _on_rx(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            prompt, _, text = raw.decode(self.encoding, errors="replace").partition("\t")
            with self._lines_lock:
                self.lines.append((prompt, text))
