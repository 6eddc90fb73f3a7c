"""Exponential backoff with jitter, for reopening a device (or any connection) that went away."""

from __future__ import annotations

import random
import threading
import time


class Backoff:
    """Delays that double from min_s up to max_s, each shortened by a random jitter fraction.

    Call ``next_delay()`` (or ``wait()``) after each failed attempt and ``reset()`` after a
    success. The jitter keeps several gates behind one flaky USB hub from retrying in step.
    """

    def __init__(
        self,
        min_s: float = 0.5,
        max_s: float = 30.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError("need 0 < min_s <= max_s")
        if factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("need factor >= 1 and 0 <= jitter <= 1")
        self.min_s = min_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 - timing jitter, not a secret

    def next_delay(self) -> float:
        """Return how long to wait before the next attempt, and count a failure."""
        # Cap the exponent: after ~60 doublings any sane max_s is reached and floats overflow later.
        ceiling = min(self.max_s, self.min_s * self.factor ** min(self.failures, 60))
        self.failures += 1
        return max(self.min_s, ceiling * (1 - self.jitter * self._rng.random()))

    def wait(self, stop: threading.Event | None = None) -> bool:
        """Sleep for the next delay; return False early when stop is set."""
        delay = self.next_delay()
        if stop is None:
            time.sleep(delay)
            return True
        return not stop.wait(delay)

    def reset(self) -> None:
        """Start again from min_s after a success."""
        self.failures = 0
