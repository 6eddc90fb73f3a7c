"""Spoken prompts: WAV files played through ALSA, or a log file on a box with no sound card."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from edge.devices.base import DeviceError
from edge.feedback import Prompt


class AlsaSpeaker:
    """Plays `<sounds_dir>/<prompt>.wav` with aplay (or the configured player) and waits."""

    def __init__(
        self, sounds_dir: Path, device: str, player: Sequence[str], timeout_s: float
    ) -> None:
        if not sounds_dir.is_dir():
            raise DeviceError(f"no sounds directory {sounds_dir} (run: menjin gate sounds)")
        self.sounds_dir = sounds_dir
        self.device = device
        self.player = list(player)
        self.timeout_s = timeout_s

    def announce(self, prompt: Prompt, text: str) -> None:
        wav = self.sounds_dir / f"{prompt.value}.wav"
        if not wav.is_file():
            raise DeviceError(f"missing prompt file {wav}")
        argv = [part.format(device=self.device, file=str(wav)) for part in self.player]
        try:
            done = subprocess.run(  # noqa: S603 - the operator's own configured player
                argv, capture_output=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"player did not finish within {self.timeout_s} s") from exc
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()[-200:]
            raise DeviceError(f"player exited {done.returncode}: {err}")

    def close(self) -> None:
        """Nothing stays open between prompts."""


class FileSink:
    """Appends one JSON line per prompt: for boxes without a speaker, and for tests."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def announce(self, prompt: Prompt, text: str) -> None:
        line = {"at": time.time(), "prompt": prompt.value, "text": text}
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
