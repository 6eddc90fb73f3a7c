"""The real gate agent on a simulated camera and a pty LCUS relay: latency and memory.

Frame shown -> relay ON (as the relay simulator saw it), beside a raw decode + ON write on the
same pty and beside the same fed camera driving the pty with no agent in between; then the RSS
of `menjin gate run` idle and after a directory of codes, beside a bare interpreter that only
imports the native libraries the agent uses.

Run: .venv/bin/python benchmarks/bench_agent.py [--n 200] [--fps 25] [--mem-images 300]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import segno
from nacl.signing import SigningKey
from numpy.typing import NDArray

from edge.assemble import assemble_gate
from edge.config import GateSettings, load_gate_settings, render_toml
from edge.devices.qr_decode import decode_frame
from edge.devices.relays import lcus_frame
from edge.devices.serial_qr import close_port, open_port, write_all
from edge.devices.sim_camera import ImageFeedCamera
from edge.devices.sim_serial import LcusRelaySim
from edge.gate import DeviceFactories, GateAgent, Timing
from protocol.epass import HolderKind, PassData, encode_pass, key_id_of

Frame = NDArray[np.uint8]

FRAME_SHAPE = (480, 640, 3)
CHANNEL = 1
PULSE_MS = 100  # short so 200 presentations fit in a minute; the pulse is not in the latency
DEBOUNCE_S = 0.5
WARMUP = 5
RAW_IMPORTS = "import cv2, zxingcpp, numpy, nacl.signing, sqlite3"
MENJIN = Path(sys.executable).parent / "menjin"


# --- passes, frames, config -----------------------------------------------------------------


def issue(key: SigningKey) -> str:
    """A fresh resident pass for site s1, valid now."""
    now = datetime.now(UTC)
    data = PassData(
        pass_id=os.urandom(8),
        site="s1",
        kind=HolderKind.RESIDENT,
        valid_from=int((now - timedelta(days=1)).timestamp()),
        valid_until=int((now + timedelta(days=30)).timestamp()),
        display_name="张*华",
    )
    return encode_pass(data, key)


def qr_code(text: str, scale: int) -> Frame:
    """The code alone, black on white with a 4-module quiet zone, as a BGR image."""
    matrix = np.array(segno.make(text, error="m", micro=False).matrix, dtype=bool)
    gray = np.where(np.pad(matrix, 4), 0, 255).astype(np.uint8)
    gray = np.repeat(np.repeat(gray, scale, axis=0), scale, axis=1)
    return np.asarray(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), np.uint8)


def camera_frame(text: str) -> Frame:
    """A 640x480 frame with the code in the middle, as a camera at the gate would see it."""
    frame = np.full(FRAME_SHAPE, 255, np.uint8)
    code = qr_code(text, scale=5)
    top, left = (480 - code.shape[0]) // 2, (640 - code.shape[1]) // 2
    frame[top : top + code.shape[0], left : left + code.shape[1]] = code
    return frame


def write_config(folder: Path, key: SigningKey, sections: dict[str, dict[str, Any]]) -> Path:
    """A gate config trusting key: temperature off, no thermometer, a short relay pulse."""
    folder.mkdir(parents=True, exist_ok=True)
    trusted = {"key_id": key_id_of(key.verify_key).hex(), "public_key": bytes(key.verify_key).hex()}
    gate = {"site": "s1", "gate": "east", "direction": "in", "temperature": "off"}
    path = folder / "gate.toml"
    path.write_text(render_toml({"gate": gate, **sections}, {"keys.trusted": [trusted]}))
    return path


def relay_section(sim: LcusRelaySim) -> dict[str, Any]:
    return {"kind": "lcus", "port": sim.path, "channel": CHANNEL, "pulse_ms": PULSE_MS}


# --- waiting on the relay simulator -----------------------------------------------------------


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        # Coarse on purpose: the simulator timestamps transitions itself, and a tight poll
        # would only compete for the GIL with the agent's threads being measured.
        time.sleep(0.002)


def transition_at(sim: LcusRelaySim, index: int, on: bool) -> float:
    """The monotonic time of the index-th relay transition, which must switch to `on`."""
    wait_for(lambda: len(sim.history) > index, 5.0, f"relay transition {index}")
    at, channel, state = sim.history[index]
    assert (channel, state) == (CHANNEL, on), sim.history[index]
    return at


def grants(sim: LcusRelaySim) -> int:
    return sum(on for _, _, on in sim.history)


# --- 1. frame -> relay ON through the agent ----------------------------------------------------


@contextmanager
def running_agent(settings: GateSettings, camera: ImageFeedCamera) -> Iterator[GateAgent]:
    """The real agent in a thread, its reader replaced by the fed camera."""
    devices = DeviceFactories.from_settings(settings)
    devices.reader = lambda: camera
    agent = assemble_gate(settings, devices, uplink=False).agent
    runner = threading.Thread(target=agent.run, name="agent")
    runner.start()
    try:
        wait_for(lambda: agent.relay is not None and agent.relay.up, 5.0, "relay open")
        yield agent
    finally:
        agent.stop.set()
        runner.join(10)
        agent.cache.close()


def present_all(
    camera: ImageFeedCamera,
    sim: LcusRelaySim,
    frames: list[Frame],
    fps: float,
    respond: Callable[[], None] = lambda: None,
) -> list[float]:
    """Show each code, then a blank; return ms from show() to the relay switching on.

    The agent responds on its own threads; a baseline passes `respond` to do it inline.
    """
    blank = np.full(FRAME_SHAPE, 255, np.uint8)
    rng = np.random.default_rng(3)
    latencies = []
    for frame in frames:
        # A random phase against the camera's frame clock, as a person arrives at any moment.
        time.sleep(float(rng.uniform(0, 1 / fps)))
        index = len(sim.history)
        started = time.monotonic()
        camera.show(frame)
        respond()
        latencies.append((transition_at(sim, index, on=True) - started) * 1000)
        transition_at(sim, index + 1, on=False)
        camera.show(blank)
        time.sleep(2 / fps)  # the reader sees the code go away
    return latencies


def measure_agent(
    folder: Path, key: SigningKey, sim: LcusRelaySim, frames: list[Frame], fps: float
) -> tuple[list[float], list[Timing]]:
    """Latencies and the agent's own per-stage timings for frames after a short warm-up."""
    sections = {"relay": relay_section(sim), "agent": {"debounce_s": DEBOUNCE_S}}
    settings = load_gate_settings(write_config(folder, key, sections))
    camera = ImageFeedCamera(max_fps=fps)
    with running_agent(settings, camera) as agent:
        present_all(camera, sim, frames[:WARMUP], fps)
        latencies = present_all(camera, sim, frames[WARMUP:], fps)
        s = agent.stats
        assert s.granted == s.presentations == len(frames) and not s.unlock_failures, s
        return latencies, agent.stats.timings[-len(latencies) :]


# --- 2. the raw baseline: decode + ON frame on the same pty -----------------------------------


def measure_raw(sim: LcusRelaySim, frames: list[Frame]) -> list[float]:
    """ms from having the frame to the simulator switching on: one decode and one write."""
    port = open_port(sim.path, 9600)
    latencies = []
    try:
        for frame in frames:
            index = len(sim.history)
            started = time.monotonic()
            if decode_frame(frame) is None:
                raise RuntimeError("raw decode missed a generated code")
            write_all(port, lcus_frame(CHANNEL, on=True))
            latencies.append((transition_at(sim, index, on=True) - started) * 1000)
            write_all(port, lcus_frame(CHANNEL, on=False))
            transition_at(sim, index + 1, on=False)
    finally:
        close_port(port)
    return latencies[WARMUP:]


def measure_camera_raw(sim: LcusRelaySim, frames: list[Frame], fps: float) -> list[float]:
    """The same camera and pty with no agent: read() the code, then write the ON frame."""
    camera = ImageFeedCamera(max_fps=fps)
    port = open_port(sim.path, 9600)
    seen: list[str] = []

    def respond() -> None:
        text = camera.read(5.0)
        if text is None or text in seen:
            raise RuntimeError("the camera did not read the code just shown")
        seen.append(text)
        write_all(port, lcus_frame(CHANNEL, on=True))
        wait_for(lambda: sim.is_on(CHANNEL), 5.0, "relay on")
        write_all(port, lcus_frame(CHANNEL, on=False))

    try:
        return present_all(camera, sim, frames, fps, respond)[WARMUP:]
    finally:
        close_port(port)
        camera.close()


# --- 3. memory of `menjin gate run` ------------------------------------------------------------


def memory_of(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def raw_rss() -> dict[str, float]:
    """A bare interpreter holding the agent's native libraries, and nothing else."""
    code = f"{RAW_IMPORTS}, sys; print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        return memory_of(proc.pid)
    finally:
        proc.stdin.close()
        proc.wait(10)


@contextmanager
def gate_process(
    folder: Path, key: SigningKey, sim: LcusRelaySim, images: Path, fps: float
) -> Iterator[subprocess.Popen[bytes]]:
    """`menjin gate run` on a camera fed from a directory of images and the pty relay."""
    reader = {"kind": "camera", "source": str(images), "max_fps": fps}
    config = write_config(folder, key, {"reader": reader, "relay": relay_section(sim)})
    log = (folder / "agent.log").open("wb")
    command = [str(MENJIN), "gate", "run", "--config", str(config), "--log-level", "WARNING"]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    except (OSError, KeyError, TimeoutError) as exc:
        if proc.poll() is not None:
            tail = (folder / "agent.log").read_text()[-2000:]
            raise RuntimeError(f"the agent exited early:\n{tail}") from exc
        raise
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def write_images(folder: Path, images: list[Frame]) -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:04d}.png"), image)
    return folder


def measure_idle(tmp: Path, key: SigningKey, fps: float, settle_s: float) -> dict[str, float]:
    """RSS after startup, the camera showing blank frames, nothing presented."""
    images = write_images(tmp / "idle-images", [np.full(FRAME_SHAPE, 255, np.uint8)])
    with (
        LcusRelaySim(tmp / "dev", name="ttyRLidle") as sim,
        gate_process(tmp / "idle", key, sim, images, fps) as proc,
    ):
        time.sleep(settle_s)
        return memory_of(proc.pid)


def measure_load(
    tmp: Path, key: SigningKey, codes: list[Frame], fps: float
) -> tuple[dict[str, float], dict[str, float]]:
    """RSS at the first grant and after every code in the directory opened the relay."""
    images = write_images(tmp / "load-images", codes)
    with (
        LcusRelaySim(tmp / "dev", name="ttyRLload") as sim,
        gate_process(tmp / "load", key, sim, images, fps) as proc,
    ):
        wait_for(lambda: grants(sim) >= 1, 30.0, "first grant")
        first = memory_of(proc.pid)
        # The relay worker runs one pulse at a time, so it trails the camera; wait for it.
        wait_for(lambda: grants(sim) >= len(codes), 15.0 + len(codes), "every grant")
        time.sleep(0.5)
        return first, memory_of(proc.pid)


# --- report -------------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summary(name: str, samples: list[float]) -> str:
    p50, p95 = percentile(samples, 0.50), percentile(samples, 0.95)
    return f"{name:34} p50 {p50:7.2f}  p95 {p95:7.2f}  max {max(samples):7.2f} ms"


def stage_times(ours: list[float], timings: list[Timing]) -> dict[str, list[float]]:
    """The agent's own per-stage timings, and what is left of each latency after them."""
    stages = {
        "  decode (frame with the code)": [t.decode_ms or 0.0 for t in timings],
        "  decide": [t.decide_ms for t in timings],
        "  journal (WAL, fsync)": [t.journal_ms for t in timings],
        "  relay queue -> pulse()": [t.relay_ms or 0.0 for t in timings],
    }
    spent = [sum(values) for values in zip(*stages.values(), strict=True)]
    rest = [total - inside for total, inside in zip(ours, spent, strict=True)]
    return stages | {"  rest (frame wait, wake-ups, pty)": rest}


def print_latency(
    ours: list[float], baselines: dict[str, list[float]], timings: list[Timing], fps: float
) -> None:
    print(f"\n1-2. frame shown -> relay ON, {len(ours)} presentations, camera max_fps {fps:g}")
    print(f"     (one frame period is {1000 / fps:.1f} ms: a code waits 0..1 period to be taken)")
    print(summary("ours: agent, show() -> relay ON", ours))
    for name, values in stage_times(ours, timings).items():
        print(summary(name, values))
    for name, base in baselines.items():
        print(summary(name, base))
        ratio50 = percentile(ours, 0.5) / percentile(base, 0.5)
        ratio95 = percentile(ours, 0.95) / percentile(base, 0.95)
        print(f"  ours/{name.split(':')[0]}: p50 {ratio50:.2f}x, p95 {ratio95:.2f}x")
    verdict = "met" if percentile(ours, 0.95) < 50 else "NOT met"
    print(f"goal p95 < 50 ms: {verdict}")


def print_memory(
    raw: dict[str, float],
    idle: dict[str, float],
    loaded: tuple[dict[str, float], dict[str, float]],
    feed: float,
) -> None:
    first, end = loaded
    print("\n3. RSS of `menjin gate run` (MB)")
    print(f"raw: python -c {RAW_IMPORTS!r:52}  VmRSS {raw['VmRSS']:6.1f}")
    print(f"ours idle (blank frames)                   VmRSS {idle['VmRSS']:6.1f}")
    print(f"ours at first grant                        VmRSS {first['VmRSS']:6.1f}")
    print(f"ours after the directory                   VmRSS {end['VmRSS']:6.1f}")
    print(f"ours peak (VmHWM)                          VmHWM {end['VmHWM']:6.1f}")
    print(f"(the test feed decodes each image when shown; all {feed:.1f} MB at once is not held)")
    base = raw["VmRSS"]
    print(f"ours/raw: idle {idle['VmRSS'] / base:.2f}x, peak {end['VmHWM'] / base:.2f}x")
    verdict = "met" if max(idle["VmRSS"], end["VmHWM"]) < 150 else "NOT met"
    print(f"goal < 150 MB idle and peak: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200, help="timed presentations")
    parser.add_argument("--fps", type=float, default=25.0, help="camera max_fps (shipped: 25)")
    parser.add_argument("--mem-images", type=int, default=300, help="codes in the RSS run")
    parser.add_argument("--mem-fps", type=float, default=60.0, help="camera max_fps, RSS run")
    parser.add_argument("--idle-s", type=float, default=4.0, help="settle time before idle RSS")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")  # fmt: skip
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    key = SigningKey.generate()
    # Every image is rendered before anything is timed.
    frames = [camera_frame(issue(key)) for _ in range(args.n + WARMUP)]
    codes = [qr_code(issue(key), scale=3) for _ in range(args.mem_images)]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "dev").mkdir()
        with LcusRelaySim(tmp / "dev") as sim:
            ours, timings = measure_agent(tmp / "agent", key, sim, frames, args.fps)
            raw = measure_raw(sim, frames)
            camera_raw = measure_camera_raw(sim, frames, args.fps)
        baselines = {
            "raw: decode + ON write -> relay ON": raw,
            "camera: same feed, read + ON write": camera_raw,
        }
        print_latency(ours, baselines, timings, args.fps)
        idle = measure_idle(tmp, key, args.fps, args.idle_s)
        loaded = measure_load(tmp, key, codes, args.mem_fps)
    feed_mb = sum(2 * c.nbytes for c in codes) / 2**20  # each image plus its own blank frame
    print_memory(raw_rss(), idle, loaded, feed_mb)
    print(
        f"(load-run images: {codes[0].shape[1]}x{codes[0].shape[0]} px codes, pulse {PULSE_MS} ms)"
    )


if __name__ == "__main__":
    main()
