"""A second core for a cold first live code: one signature check in a worker thread.

A live code of a pass this gate never verified needs two Ed25519 checks, the issuer's over the
pass and the phone's over (pass id, slot). PyNaCl lets go of the GIL while it verifies, so a
worker thread can check one while the deciding thread checks the other.

Safety rests on three things: a job carries its own check (a closure over the exact pass and
key), so a result cannot reach another decision; the worker takes one job at a time and a
caller that finds it busy checks for itself; and any error, timeout or dead worker gives no
result (None), on which the caller checks sequentially, as on a box with one core. A worker
that died is replaced at the next job.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections.abc import Callable

from nacl.signing import SigningKey

log = logging.getLogger(__name__)

# Far above a verify (about 60 us, a few ms on a loaded box): only a stuck worker reaches it.
RESULT_TIMEOUT_S = 0.25
CALIBRATION_ROUNDS = 21  # about 25 ms in the background, once per process


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class VerifyJob:
    """One check handed to the worker: run by whichever of the worker and the caller claims it
    first, so a worker that was slow to wake never makes the caller wait."""

    __slots__ = ("check", "claimed", "done", "ok")

    def __init__(self, check: Callable[[], bool]) -> None:
        self.check = check
        self.ok: bool | None = None
        self.claimed = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()

    def run(self) -> None:
        """In the worker: the check, unless the caller took it back."""
        if not self.claimed.acquire(blocking=False):
            return
        try:
            self.ok = bool(self.check())
        except Exception:
            self.ok = None  # the caller checks for itself, and meets the error there
        finally:
            self.done.release()  # also when the thread dies of a BaseException


class _Worker:
    """A daemon thread blocked on a lock until a job is put in front of it."""

    def __init__(self) -> None:
        self.idle = threading.Lock()  # held by a caller from handing a job over until it ran
        self.go = threading.Lock()
        self.go.acquire()
        self.job: VerifyJob | None = None
        self.thread = threading.Thread(target=self._run, name="verify-worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.go.acquire()
            job, self.job = self.job, None
            if job is None:  # told to stop
                return
            job.run()  # a BaseException ends the thread still busy: never handed a job again
            self.idle.release()


def overlap_helps(pool: VerifyPool, rounds: int = CALIBRATION_ROUNDS) -> bool:
    """Whether two Ed25519 verifies overlapped through the pool take under 3/4 of two in a row.

    The overlap saves one verify less the hand-off; where waking a thread on another core is
    dear (on the virtual machine we measured, about one verify), it saves nothing and the pool
    would only add its tail. Measured as the decisions use it, the caller verifying meanwhile.
    """
    key = SigningKey(bytes(32))
    message = b"menjin verify pool calibration"
    signature = key.sign(message).signature
    verify = key.verify_key.verify
    overlapped, in_a_row = [], []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        verify(message, signature)
        verify(message, signature)
        t1 = time.perf_counter_ns()
        job = pool.start(lambda: verify(message, signature) == message)
        verify(message, signature)
        if job is None or pool.result(job) is None:
            verify(message, signature)
        t2 = time.perf_counter_ns()
        in_a_row.append(t1 - t0)
        overlapped.append(t2 - t1)
        time.sleep(0.001)  # as between presentations: the worker's core may sleep meanwhile
    pair, row = statistics.median(overlapped) / 1000, statistics.median(in_a_row) / 1000
    helps = pair < 0.75 * row
    log.info(
        "verify pool %s: two verifies overlapped %.0f us, in a row %.0f us",
        "on" if helps else "off",
        pair,
        row,
    )
    return helps


class VerifyPool:
    """Hands one signature check at a time to a worker; sequential where it cannot help.

    `parallel` None means: on where this process may use two cores or more and a round trip to
    the overlap pays (overlap_helps, measured on first use). False makes `start` always answer
    None, so every check runs in the caller, exactly as without the pool; True forces it on.
    """

    def __init__(self, parallel: bool | None = None, timeout_s: float = RESULT_TIMEOUT_S) -> None:
        # Auto: sequential until a background measurement (started on first use) says otherwise.
        self._calibrate = parallel is None and usable_cores() >= 2
        self.parallel = bool(parallel)
        self.timeout_s = timeout_s
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self.restarts = 0  # workers found dead and replaced
        self.handed = 0  # jobs handed to a worker
        self.taken_back = 0  # of those, checked by the caller: the worker had not begun
        self.measured = False  # auto: the background measurement has decided `parallel`

    def measure_soon(self) -> None:
        """Auto: start the background measurement now (a gate's start), once; else nothing.
        A pool nobody started measures on its first use instead."""
        with self._lock:
            due, self._calibrate = self._calibrate, False
        if due:
            threading.Thread(target=self._measure, name="verify-calibration", daemon=True).start()

    def start(self, check: Callable[[], bool]) -> VerifyJob | None:
        """Hand `check` to the worker; None when the caller must run it itself."""
        if self._calibrate:
            self.measure_soon()
        if not self.parallel:
            return None
        worker = self._live_worker()
        if not worker.idle.acquire(blocking=False):
            return None  # busy with another decision's check
        job = VerifyJob(check)
        worker.job = job
        self.handed += 1
        worker.go.release()
        return job

    def result(self, job: VerifyJob) -> bool | None:
        """The job's answer; None when the caller must check for itself: the worker had not
        begun it (taken back: no waiting for a thread the OS has not run yet), or it failed,
        timed out or died."""
        if job.claimed.acquire(blocking=False):
            self.taken_back += 1
            return None
        if not job.done.acquire(timeout=self.timeout_s):
            return None
        return job.ok

    def calibrate(self) -> bool:
        """Make the pending measurement now, in this thread (a gate's start, a benchmark);
        whether the pool is on."""
        if self._calibrate:
            self._calibrate = False
            self._measure()
        return self.parallel

    def _measure(self) -> None:
        trial = VerifyPool(parallel=True, timeout_s=self.timeout_s)
        try:
            self.parallel = overlap_helps(trial)
        finally:
            trial.close()
        self.measured = True

    def close(self) -> None:
        """Stop the worker (tests; a daemon thread otherwise ends with the process)."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None and worker.idle.acquire(timeout=self.timeout_s):
            worker.go.release()  # job None: the thread returns
            worker.thread.join(self.timeout_s)

    def _live_worker(self) -> _Worker:
        worker = self._worker
        if worker is not None and worker.thread.is_alive():
            return worker
        with self._lock:
            if self._worker is None or not self._worker.thread.is_alive():
                self.restarts += self._worker is not None
                self._worker = _Worker()  # started on first use: most contexts never need it
            return self._worker


_SHARED: list[VerifyPool] = []
_SHARED_LOCK = threading.Lock()


def shared_pool() -> VerifyPool:
    """The process's one pool (default on with two cores or more), made on first use."""
    with _SHARED_LOCK:
        if not _SHARED:
            _SHARED.append(VerifyPool())
        return _SHARED[0]
