"""A gate that speaks: prompts per outcome, after the relay, never repeated, never in the way."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from edge.assemble import assemble_gate
from edge.config import load_gate_settings
from edge.devices.sim_display import TextDisplaySim
from edge.devices.sim_serial import LcusRelaySim, QrHeadSim
from edge.feedback import PROMPT_TEXT, Prompt, prompt_for
from edge.gate import GateAgent
from edge.sounds import ensure_sounds, synthesizer
from protocol.epass import HolderKind
from tests.conftest import skip_or_fail
from tests.integration.agent_helpers import issue, make_keys, wait_for, write_config

Rig = tuple[QrHeadSim, LcusRelaySim, TextDisplaySim]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    links = tmp_path / "dev"
    links.mkdir()
    sims = (QrHeadSim(links), LcusRelaySim(links), TextDisplaySim(links, encoding="gb18030"))
    for sim in sims:
        sim.start()
    yield sims
    for sim in sims:
        sim.stop()


def _agent(
    tmp_path: Path, rig: Rig, feedback: dict[str, object]
) -> tuple[GateAgent, threading.Thread, SigningKey]:
    qr, relay, display = rig
    key = make_keys(tmp_path)
    sections: dict[str, dict[str, object]] = {
        "reader": {"kind": "serial", "port": qr.path},
        "relay": {"kind": "lcus", "port": relay.path, "channel": 1, "pulse_ms": 100},
        "agent": {"debounce_s": 2.0},
        "feedback": {"display": "serial", "display_port": display.path,
                     "display_encoding": "gb18030", **feedback},
    }  # fmt: skip
    settings = load_gate_settings(write_config(tmp_path, key, sections))
    agent = assemble_gate(settings, uplink=False).agent
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    wait_for(lambda: agent.reader is not None and agent.reader.up, what="reader up")
    return agent, thread, key


def _prompts(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["prompt"] for line in path.read_text("utf-8").splitlines()]


def test_each_outcome_speaks_once_after_the_relay(tmp_path: Path, rig: Rig) -> None:
    qr, relay, display = rig
    agent, thread, key = _agent(tmp_path, rig, {"speaker": "file", "log_path": "prompts.log"})
    log_path = tmp_path / "prompts.log"
    try:
        good = issue(key)
        qr.scan(good)
        wait_for(lambda: _prompts(log_path) == ["granted"], what="granted prompt")
        spoken_at = json.loads(log_path.read_text("utf-8").splitlines()[0])["at"]
        relay_at = relay.history[0][0] + (time.time() - time.monotonic())
        assert relay_at <= spoken_at + 0.05  # the relay was commanded first
        qr.scan(good)  # held in front of the reader: a debounced re-read says nothing
        now = int(time.time())
        qr.scan(issue(key, valid_from=now - 10 * 86400, valid_until=now - 2 * 86400))
        wait_for(lambda: len(_prompts(log_path)) == 2, what="second prompt")
        assert _prompts(log_path) == ["granted", "expired"]
        wait_for(lambda: len(display.lines) == 2, what="display lines")
        assert display.lines == [
            ("granted", "请通行"),
            ("expired", "通行证已过期，请到居委会办理"),
        ]
        time.sleep(0.5)
        assert _prompts(log_path) == ["granted", "expired"]
    finally:
        agent.stop.set()
        thread.join(10)
    assert agent.counters()["prompts_played"] == 2


def test_a_busy_speaker_never_delays_the_relay(tmp_path: Path, rig: Rig) -> None:
    qr, relay, _display = rig
    sounds = tmp_path / "sounds"
    ensure_sounds(sounds, speech=False)
    started = tmp_path / "plays.txt"
    # A player that takes 3 s per prompt, like a long recording on a slow speaker.
    player = ["sh", "-c", f"echo {{file}} >> {started}; sleep 3", "player"]
    feedback = {"speaker": "alsa", "sounds_dir": "sounds", "player": player}
    agent, thread, key = _agent(tmp_path, rig, feedback)
    try:
        lags = []
        for n in range(3):
            before = len([h for h in relay.history if h[2]])
            t0 = time.monotonic()
            qr.scan(issue(key, kind=HolderKind.RESIDENT, display_name=f"张*{n}"))
            wait_for(lambda b=before: len([h for h in relay.history if h[2]]) > b, what="pulse")
            lags.append(time.monotonic() - t0)
            time.sleep(0.3)
        assert max(lags) < 1.0, lags  # the relay never waited for the 3 s player
        time.sleep(0.2)
        # The first prompt is still playing; the later ones replaced each other while waiting.
        assert agent.feedback.replaced >= 1
    finally:
        agent.stop.set()
        thread.join(10)


def test_prompts_cover_every_reason() -> None:
    from edge.decide import Reason

    for reason in Reason:
        assert prompt_for(reason.value) in PROMPT_TEXT
    assert prompt_for("ok") is Prompt.GRANTED
    assert prompt_for("bad_signature") is Prompt.UNREADABLE


def test_default_tones_are_distinct_valid_wavs_and_keep_operator_files(tmp_path: Path) -> None:
    (tmp_path / "granted.wav").write_bytes(b"operator's own recording")
    report = ensure_sounds(tmp_path, speech=False)
    assert report.kept == ["granted"]
    assert len(report.tones) == len(Prompt) - 1
    digests = set()
    for prompt in Prompt:
        if prompt is Prompt.GRANTED:
            continue
        path = tmp_path / f"{prompt.value}.wav"
        with wave.open(str(path)) as wav:
            assert wav.getnchannels() == 1 and wav.getnframes() > 1000
        digests.add(sha256(path.read_bytes()).hexdigest())
    assert len(digests) == len(Prompt) - 1
    assert (tmp_path / "granted.wav").read_bytes() == b"operator's own recording"


def test_gate_sounds_speaks_mandarin_with_espeak_ng(tmp_path: Path) -> None:
    if synthesizer() is None:
        skip_or_fail("espeak-ng is not installed (apt install espeak-ng)")
    exe = Path(sys.executable).parent / "menjin"
    out = subprocess.run(
        [str(exe), "gate", "sounds", "--out", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert f"{len(Prompt)} spoken" in out.stdout
    with wave.open(str(tmp_path / "s" / "granted.wav")) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert 0.3 < seconds < 5
