"""A CPU-clock profile of every thread of a `menjin central serve` started by a benchmark.

Put this directory on PYTHONPATH and MENJIN_CPU_PROFILE=<file> in the environment of the
benchmark (its child processes inherit both); only a process run as `menjin central serve`
profiles the threads it starts (ingest, paho's network loop, housekeeping; not the main
thread, whose imports would slow start-up past the benchmarks' wait, and which then only runs
uvicorn's idle event loop), each with cProfile on that thread's CPU clock, and writes the
merged pstats to the file when it exits. Read it with `python -m pstats <file>` (sort tottime).
The profiler roughly doubles central's CPU: use the shares, not the totals.
"""

from __future__ import annotations

import atexit
import cProfile
import os
import pstats
import signal
import sys
import threading
import time

_OUT = os.environ.get("MENJIN_CPU_PROFILE", "")
_profiles: list[cProfile.Profile] = []


def _profiled_run(self: threading.Thread) -> None:
    prof = cProfile.Profile(time.thread_time)
    _profiles.append(prof)
    prof.enable()
    try:
        _plain_run(self)
    finally:
        prof.disable()


_plain_run = threading.Thread.run


def _dump() -> None:
    if not _profiles:
        return
    stats = pstats.Stats(_profiles[0])
    for prof in _profiles[1:]:
        stats.add(prof)
    stats.dump_stats(_OUT)


def _dump_and_die(signum: int, _frame: object) -> None:
    # uvicorn shuts down on SIGTERM, puts the handler it found back and raises the signal
    # again, so the process dies of it without running atexit: write the profile here.
    _dump()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


if _OUT and sys.argv[1:3] == ["central", "serve"]:
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    atexit.register(_dump)
    signal.signal(signal.SIGTERM, _dump_and_die)
