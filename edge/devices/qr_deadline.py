"""One wall-clock deadline a frame for the decoder's dear looks, checked inside their loops.

A deadline is a time.perf_counter() value in seconds (math.inf: none). The soft and lattice
looks (edge/devices/qr_decode.py) call `check` in every loop that can run long; past the
deadline it raises, the look gives up with no text, and a half-solved code never reaches the
Reed-Solomon reader, so nothing is decided on one.
"""

from __future__ import annotations

import time


class DeadlinePassedError(Exception):
    """The frame's deadline passed before the look finished: it has no text to give."""


def check(deadline: float) -> None:
    """Raise DeadlinePassedError once time.perf_counter() is past `deadline`."""
    if time.perf_counter() > deadline:
        raise DeadlinePassedError
