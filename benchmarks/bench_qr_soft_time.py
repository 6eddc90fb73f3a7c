"""How long the soft + lattice look holds a frame: each frame decoded once, that stage timed.

Run: .venv/bin/python benchmarks/bench_qr_soft_time.py [--sets goal,held-out,selection,photos]
    [--photos DIR]

The soft look and the lattice look (edge/devices/qr_decode.py) share one deadline a frame;
this prints, per set, the exact and wrong decodes, the whole decode's median / p95 / max and
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
from bench_qr import PHOTOS, load, p95

from edge.devices import qr_decode
from tests.qr_frames import GOAL_SEED, HELD_OUT_SEED, frames
from tests.qr_timing import soft_timer

SELECTION_SEED = 1
Case = tuple[str, np.ndarray, str]


def cases(name: str, photos: Path) -> list[Case]:
    """The frames of one set as (label, image, expected text)."""
    if name == "photos":
        return [(p.name, p.image, p.expected.decode("utf-8", "replace")) for p in load(photos)]
    seed, count = {"goal": (GOAL_SEED, 100), "held-out": (HELD_OUT_SEED, 100)}.get(
        name, (SELECTION_SEED, 200)
    )
    return [(f"#{f.index}", f.image, f.text) for f in frames(seed, count)]


def report(name: str, batch: list[Case]) -> None:
    """Decode each frame once and print counts and times."""
    exact = wrong = 0
    totals: list[float] = []
    soft: list[float] = []
    cpu: list[float] = []
    lattice: list[str] = []
    for label, image, expected in batch:
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
    for name in args.sets.split(","):
        report(name, cases(name, args.photos))
    print_load("at end")


if __name__ == "__main__":
    main()
