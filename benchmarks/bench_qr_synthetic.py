"""Decode synthetic hard camera frames (tests/qr_frames.py): the gate pipeline vs plain zxing-cpp.

Run: .venv/bin/python benchmarks/bench_qr_synthetic.py [--count 100] [--repeats 5]

Two sets of the same distribution: the goal set (seed GOAL_SEED) and a held-out set with
another seed, which no decoder choice was made on. Every fourth frame is a phone's live code
(version 10); `--static-only` gives the sets as they were before live codes joined them.
`--glare-anywhere` also lets the glare cover a finder pattern (the generator moves it off them
by default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
from _stack import print_load, print_machine  # also puts the repository on sys.path for tests
from bench_qr import p95, raw_decode, raw_qr_decode

from edge.devices.qr_decode import decode_frame, decode_with_stage
from tests.qr_frames import GOAL_SEED, HELD_OUT_SEED, Frame, frames

Decoder = Callable[[np.ndarray], str | None]
DECODERS: dict[str, Decoder] = {"ours": decode_frame, "raw": raw_decode, "raw-qr": raw_qr_decode}


def timed(decode: Decoder, image: np.ndarray, repeats: int) -> tuple[str | None, float]:
    """Decode `repeats` times; return the text and the median time in ms."""
    times, text = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        text = decode(image)
        times.append((time.perf_counter() - start) * 1000.0)
    return text, statistics.median(times)


def measure(
    decode: Decoder, batch: list[Frame], repeats: int
) -> tuple[list[bool], int, list[float]]:
    """Exact decodes per frame, the count of wrong texts, and each frame's median ms."""
    exact, wrong, millis = [], 0, []
    for frame in batch:
        text, ms = timed(decode, frame.image, repeats)
        exact.append(text == frame.text)
        wrong += text is not None and text != frame.text
        millis.append(ms)
    return exact, wrong, millis


def report(label: str, batch: list[Frame], repeats: int) -> None:
    """Print rate, wrong decodes and timings per decoder, then ours against each baseline."""
    print(f"\n{label}: {len(batch)} frames")
    results = {name: measure(decode, batch, repeats) for name, decode in DECODERS.items()}
    for name, (exact, wrong, millis) in results.items():
        print(
            f"  {name:7} {sum(exact):3}/{len(batch)} exact, {wrong} wrong; median "
            f"{statistics.median(millis):.2f} ms, p95 {p95(millis):.2f} ms, "
            f"mean {statistics.mean(millis):.2f} ms; {by_kind(batch, exact)}"
        )
    ours_exact, _, ours_ms = results["ours"]
    for name in ("raw", "raw-qr"):
        exact, _, millis = results[name]
        print(
            f"  ours/{name}: decoded {sum(ours_exact)}/{sum(exact)} "
            f"({sum(ours_exact) / max(1, sum(exact)):.2f}x), median time "
            f"{statistics.median(ours_ms) / statistics.median(millis):.2f}x"
        )
    stages = Counter(
        str(decode_with_stage(f.image)[1]) for f, ok in zip(batch, ours_exact, strict=True) if ok
    )
    print("  ours, decoded by stage:", dict(stages.most_common()))
    print_misses(batch, ours_exact, results["raw"][0])


def by_kind(batch: list[Frame], exact: list[bool]) -> str:
    """Exact decodes of live codes, static screens and static cards, each of its count."""
    kinds: dict[str, list[bool]] = {"live": [], "static screen": [], "static paper": []}
    for frame, ok in zip(batch, exact, strict=True):
        c = frame.conditions
        kinds["live" if c.live else f"static {c.surface}"].append(ok)
    return ", ".join(f"{name} {sum(oks)}/{len(oks)}" for name, oks in kinds.items() if oks)


def print_misses(batch: list[Frame], ours: list[bool], raw: list[bool]) -> None:
    """List the frames ours missed, with what they went through, and where raw beat us."""
    for frame, ok, raw_ok in zip(batch, ours, raw, strict=True):
        if not ok:
            note = " (raw read it)" if raw_ok else ""
            print(f"  missed #{frame.index}: {frame.conditions.describe()}{note}")


def main() -> None:
    """Generate both sets, warm up, and report each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="frames per set")
    parser.add_argument("--repeats", type=int, default=5, help="timed decodes per frame")
    parser.add_argument("--glare-anywhere", action="store_true", help="glare may hit a finder")
    parser.add_argument("--static-only", action="store_true", help="no live codes (old sets)")
    args = parser.parse_args()
    print_machine(sys.argv, vars(args))
    clear, live = not args.glare_anywhere, not args.static_only
    sets = {
        f"goal set (seed {GOAL_SEED})": frames(GOAL_SEED, args.count, clear, live),
        f"held-out set (seed {HELD_OUT_SEED})": frames(HELD_OUT_SEED, args.count, clear, live),
    }
    for batch in sets.values():  # warm up caches and lazy initialisation
        for decode in DECODERS.values():
            decode(batch[0].image)
    for label, batch in sets.items():
        report(label, batch, args.repeats)
    print_load("at end")


if __name__ == "__main__":
    main()
