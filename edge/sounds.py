"""The default prompt WAVs: Mandarin speech from espeak-ng where it is installed, tones otherwise.

Made at install time (`menjin gate sounds`, and by the agent at start for any file missing).
An existing file is never overwritten: the operator may record their own voice over any prompt.
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import wave
from dataclasses import dataclass, field
from pathlib import Path

from edge.feedback import PROMPT_TEXT, Prompt

RATE = 16_000
ESPEAK_VOICE = "cmn"  # espeak-ng's Mandarin

# Notes (Hz, ms) per prompt: a rising pair means "go", low notes mean "no", fast beeps "wait".
_TONES: dict[Prompt, list[tuple[float, int]]] = {
    Prompt.GRANTED: [(660, 150), (880, 220)],
    Prompt.SHOW_PASS: [(550, 120), (0, 80), (550, 120)],
    Prompt.UNREADABLE: [(440, 120), (330, 260)],
    Prompt.EXPIRED: [(392, 400)],
    Prompt.NOT_YET_VALID: [(392, 200), (440, 200)],
    Prompt.REVOKED: [(294, 500)],
    Prompt.WRONG_GATE: [(349, 200), (294, 300)],
    Prompt.OUTSIDE_HOURS: [(330, 200), (0, 80), (330, 200)],
    Prompt.USE_LIMIT: [(392, 150), (330, 150), (262, 250)],
    Prompt.PASSBACK: [(440, 100), (0, 60), (440, 100), (0, 60), (330, 200)],
    Prompt.RETEST: [(880, 90), (0, 60), (880, 90), (0, 60), (880, 90)],
    Prompt.FEVER: [(988, 300), (740, 300), (988, 300)],
    Prompt.TAKE_TEMPERATURE: [(523, 150), (659, 150)],
    Prompt.UNLOCK_FAILED: [(262, 250), (0, 80), (262, 250)],
    Prompt.LOCKDOWN: [(294, 200), (0, 80), (294, 200), (0, 80), (294, 200)],
    Prompt.SHOW_LIVE_CODE: [(523, 120), (0, 60), (659, 120), (0, 60), (523, 120)],
    Prompt.STALE_CODE: [(440, 150), (392, 150), (349, 250)],
    Prompt.REPLAYED: [(330, 100), (0, 60), (330, 100), (0, 60), (262, 300)],
}


@dataclass
class SoundsReport:
    spoken: list[str] = field(default_factory=list)
    tones: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def synthesizer() -> str | None:
    """The packaged speech synthesizer on this box, if any."""
    return shutil.which("espeak-ng")


def ensure_sounds(directory: Path, *, speech: bool = True) -> SoundsReport:
    """Write every missing `<prompt>.wav`; speech when espeak-ng is present and wanted."""
    directory.mkdir(parents=True, exist_ok=True)
    report = SoundsReport()
    engine = synthesizer() if speech else None
    for prompt in Prompt:
        path = directory / f"{prompt.value}.wav"
        if path.exists():
            report.kept.append(prompt.value)
        elif engine is not None and _speak(engine, PROMPT_TEXT[prompt], path):
            report.spoken.append(prompt.value)
        else:
            write_tones(path, _TONES[prompt])
            report.tones.append(prompt.value)
    return report


def _speak(engine: str, text: str, path: Path) -> bool:
    staging = path.with_suffix(".tmp.wav")
    try:
        done = subprocess.run(  # noqa: S603 - our own fixed argv
            [engine, "-v", ESPEAK_VOICE, "-s", "150", "-w", str(staging), text],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if done.returncode != 0 or not staging.exists() or staging.stat().st_size < 1000:
        staging.unlink(missing_ok=True)
        return False
    staging.replace(path)
    return True


def write_tones(path: Path, notes: list[tuple[float, int]]) -> None:
    """A mono 16-bit WAV of sine notes (0 Hz is a rest), each with a short fade against clicks."""
    frames = bytearray()
    for freq, ms in notes:
        count = RATE * ms // 1000
        fade = min(count // 4, RATE // 200)
        for i in range(count):
            envelope = min(1.0, i / fade, (count - i) / fade) if fade else 1.0
            sample = 0.0 if freq <= 0 else math.sin(2 * math.pi * freq * i / RATE)
            frames += struct.pack("<h", int(12_000 * envelope * sample))
    staging = path.with_suffix(".tmp.wav")
    with wave.open(str(staging), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(frames))
    staging.replace(path)
