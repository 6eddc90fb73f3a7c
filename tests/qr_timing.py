"""Time the decoder's soft + lattice look (edge/devices/qr_decode.py) on the frames decoded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from edge.devices import qr_decode


@contextmanager
def soft_timer(spent: list[float], cpu: list[float] | None = None) -> Iterator[None]:
    """Append the ms each run of the soft stage takes to `spent` while inside, and the ms
    of CPU the process had meanwhile to `cpu`: far less than the wall time is time off CPU."""
    original = qr_decode._soft_attempts

    def timed(*args: object) -> tuple[str | None, str | None]:
        start, ran = time.perf_counter(), time.process_time()
        try:
            return original(*args)  # type: ignore[arg-type]
        finally:
            spent.append((time.perf_counter() - start) * 1000.0)
            if cpu is not None:
                cpu.append((time.process_time() - ran) * 1000.0)

    qr_decode._soft_attempts = timed  # type: ignore[assignment]
    try:
        yield
    finally:
        qr_decode._soft_attempts = original
