"""How long the soft + lattice look holds a frame: each frame decoded once, that stage timed.

Run: .venv/bin/python benchmarks/bench_qr_soft_time.py [--sets goal,held-out,selection,photos]
    [--photos DIR]

The soft look and the lattice look (edge/devices/qr_decode.py) share one deadline a frame;
this prints, per set, the exact and wrong decodes, the whole decode's median / p95 / max beside
plain zxing-cpp's QR-only call on the same frames in the same loop (the raw baseline), and
the soft stage's p95 / max over the frames that reached it (with the CPU time the process had
during the slowest: far less is time spent off the CPU), and the frames the lattice read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _stack import print_load, print_machine  # also puts the repository on sys.path
from bench_qr import PHOTOS, load, p95, raw_qr_decode

from edge.devices import qr_decode
from tests.qr_frames import GOAL_SEED, HELD_OUT_SEED, frames
from tests.qr_timing import soft_timer

SELECTION_SEED = 1
SETS = {
    "goal": (GOAL_SEED, 100),
    "held-out": (HELD_OUT_SEED, 100),
    "selection": (SELECTION_SEED, 200),
}
Case = tuple[str, np.ndarray, str]


def cases(name: str, photos: Path) -> list[Case]:
    """The frames of one set as (label, image, expected text)."""
    if name == "photos":
        return [(p.name, p.image, p.expected.decode("utf-8", "replace")) for p in load(photos)]
    seed, count = SETS[name]
    return [(f"#{f.index}", f.image, f.text) for f in frames(seed, count)]


def report(name: str, batch: list[Case]) -> None:
    """Decode each frame once and print counts and times."""
    exact = wrong = 0
    totals: list[float] = []
    soft: list[float] = []
    cpu: list[float] = []
    lattice: list[str] = []
    raw_exact = 0
    raw_ms: list[float] = []
    for label, image, expected in batch:
        start = time.perf_counter()
        raw_exact += raw_qr_decode(image) == expected
        raw_ms.append((time.perf_counter() - start) * 1000.0)
        spent: list[float] = []
        with soft_timer(spent, cpu):
            start = time.perf_counter()
            text, stage = qr_decode.decode_with_stage(image)
            totals.append((time.perf_counter() - start) * 1000.0)
        soft += spent
        exact += text == expected
        wrong += text is not None and text != expected
        if stage == "lattice" and text == expected:
            lattice.append(f"{label} ({totals[-1]:.0f} ms)")
    print(
        f"{name}: {exact}/{len(batch)} exact, {wrong} wrong; decode median "
        f"{statistics.median(totals):.2f} ms, p95 {p95(totals):.0f} ms, max {max(totals):.0f} ms"
    )
    raw_median = statistics.median(raw_ms)
    print(
        f"  raw zxing-cpp (QR only): {raw_exact}/{len(batch)} exact; median {raw_median:.2f} ms,"
        f" max {max(raw_ms):.0f} ms; ours/raw median {statistics.median(totals) / raw_median:.2f}x"
    )
    if soft:
        slowest = soft.index(max(soft))
        print(
            f"  soft + lattice on {len(soft)} frames: p95 {p95(soft):.0f} ms, max "
            f"{soft[slowest]:.0f} ms (process CPU meanwhile {cpu[slowest]:.0f} ms)"
        )
    print(f"  read by the lattice look: {', '.join(lattice) or 'none'}")


def main() -> None:
    """Report each chosen set in turn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="goal,held-out,selection,photos")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="the real photo set")
    args = parser.parse_args()
    print_machine(sys.argv, vars(args))
    print(
        f"soft budget {qr_decode.SOFT_BUDGET_MS:.0f} ms, deadline {qr_decode.SOFT_DEADLINE_MS:.0f}"
    )
    qr_decode.decode_frame(np.zeros((64, 64), np.uint8))
    names = args.sets.split(",")
    unknown = [n for n in names if n not in SETS and n != "photos"]
    if unknown:
        parser.error(f"unknown set {', '.join(unknown)}: choose from {', '.join(SETS)}, photos")
    for name in names:
        report(name, cases(name, args.photos))
    print_load("at end")


if __name__ == "__main__":
    main()
