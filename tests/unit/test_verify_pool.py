"""The verify pool: a cold first code decided with the worker is decided as without it."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import verify_pool
from edge.decide import Decision, Reason, decide
from edge.sigmemo import SignatureMemo
from edge.verify_pool import VerifyJob, VerifyPool, overlap_helps
from protocol.base45 import b45decode, b45encode
from protocol.epass_bound import PROOF_LEN
from tests.unit.decide_helpers import MemoryCache
from tests.unit.livecode_helpers import NOW
from tests.unit.test_livecode_fuzz import CTX, VALID, mutate


def forged(live: str) -> str:
    """The live code with one bit of its issuer signature flipped."""
    raw = bytearray(b45decode(live[4:]))
    raw[-PROOF_LEN - 1] ^= 1
    return "MJ2:" + b45encode(bytes(raw))


def _claimed(job: VerifyJob | None) -> VerifyJob:
    """The job once the worker began it (else the caller would take it back)."""
    assert job is not None
    for _ in range(500):
        if job.claimed.locked():
            return job
        threading.Event().wait(0.002)
    raise AssertionError("the worker never began the job")


def _decide_cold(text: str, pool: VerifyPool) -> Decision:
    """A decision at a gate that never verified this pass (an empty memory and store)."""
    ctx = replace(CTX, verified=SignatureMemo(), verify_pool=pool)
    return decide(text, ctx, MemoryCache(), NOW)


def _same(a: Decision, b: Decision) -> None:
    assert a == b
    assert a.signature_digest == b.signature_digest


@pytest.fixture
def pool() -> VerifyPool:
    return VerifyPool(parallel=True)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, len(VALID) - 1),
    st.integers(0, 2**32),
    st.sampled_from(["valid", "forged", "mutated"]),
)
def test_parallel_and_sequential_decide_alike(index: int, seed: int, kind: str) -> None:
    live, static = VALID[index]
    text = {"valid": live, "forged": forged(live),
            "mutated": mutate(live, static, random.Random(seed))}[kind]  # fmt: skip
    parallel = VerifyPool(parallel=True)
    try:
        _same(_decide_cold(text, parallel), _decide_cold(text, VerifyPool(parallel=False)))
    finally:
        parallel.close()


def test_valid_codes_use_the_worker_and_forged_ones_are_refused(pool: VerifyPool) -> None:
    for live, _ in VALID:
        assert _decide_cold(live, pool).granted
        assert _decide_cold(forged(live), pool).reason is Reason.BAD_SIGNATURE
    assert pool.handed > 0  # issuer signatures went to the worker (one busy there: not)
    pool.close()


class _FailingPool(VerifyPool):
    """A worker whose every check goes wrong in its own way."""

    def __init__(self, check: object) -> None:
        super().__init__(parallel=True, timeout_s=0.02)
        self.bad_check = check

    def start(self, check: object) -> VerifyJob | None:
        return super().start(self.bad_check)  # type: ignore[arg-type]


def _raises() -> bool:
    raise RuntimeError("worker failed")


@pytest.mark.parametrize("bad", [_raises, lambda: threading.Event().wait(1) and False])
def test_a_failed_or_stuck_worker_decides_sequentially(bad: object) -> None:
    pool = _FailingPool(bad)
    for live, _ in VALID[:4]:
        _same(_decide_cold(live, pool), _decide_cold(live, VerifyPool(parallel=False)))
        assert _decide_cold(forged(live), pool).reason is Reason.BAD_SIGNATURE
    assert pool.handed >= 1


def _exits() -> bool:
    raise SystemExit


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_is_replaced(pool: VerifyPool) -> None:
    assert pool.result(_claimed(pool.start(_exits))) is None
    again = None
    for _ in range(100):  # the dying thread may still be alive for a moment
        again = pool.start(lambda: True)
        if again is not None:
            break
        threading.Event().wait(0.01)
    assert pool.result(_claimed(again)) is True
    assert pool.restarts == 1
    pool.close()


def test_a_busy_worker_leaves_the_check_to_the_caller(pool: VerifyPool) -> None:
    release = threading.Event()
    first = pool.start(release.wait)
    _claimed(first)
    assert pool.start(lambda: True) is None
    release.set()
    assert pool.result(first) is True
    pool.close()


def test_a_job_the_worker_has_not_begun_is_taken_back() -> None:
    ran: list[bool] = []
    job = VerifyJob(lambda: ran.append(True) or True)
    assert VerifyPool(parallel=True).result(job) is None  # the caller checks for itself
    job.run()  # the worker, late: the check is not run twice
    assert ran == []


def test_concurrent_decisions_get_their_own_results(pool: VerifyPool) -> None:
    texts = [t for live, _ in VALID for t in (live, forged(live))] * 5
    want = [_decide_cold(t, VerifyPool(parallel=False)) for t in texts]
    got: dict[int, list[Decision]] = {0: [], 1: []}

    def run(n: int) -> None:
        got[n] = [_decide_cold(t, pool) for t in texts]

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for decisions in got.values():
        for a, b in zip(decisions, want, strict=True):
            _same(a, b)
    pool.close()


def test_one_core_is_sequential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_pool.os, "sched_getaffinity", lambda pid: {0})
    pool = VerifyPool()
    assert not pool.calibrate()  # nothing to measure: off
    assert _decide_cold(VALID[0][0], pool).granted
    assert pool.handed == 0 and not pool.measured
    assert not VerifyPool(parallel=False).calibrate()


def test_auto_measures_in_the_background_and_decides_sequentially_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verify_pool.os, "sched_getaffinity", lambda pid: {0, 1})
    gate = threading.Event()
    monkeypatch.setattr(verify_pool, "overlap_helps", lambda pool: gate.wait(5))
    pool = VerifyPool()
    assert not pool.parallel  # until measured
    for live, _ in VALID[:3]:
        assert _decide_cold(live, pool).granted
    assert pool.handed == 0 and not pool.measured
    gate.set()  # the measurement finds the overlap pays
    for _ in range(500):
        if pool.measured:
            break
        threading.Event().wait(0.002)
    assert pool.measured and pool.parallel
    for live, _ in VALID:
        assert _decide_cold(live, pool).granted
    assert pool.handed > 0
    pool.close()


def test_a_gate_start_measures_before_any_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_pool.os, "sched_getaffinity", lambda pid: {0, 1})
    runs: list[VerifyPool] = []
    monkeypatch.setattr(verify_pool, "overlap_helps", lambda pool: runs.append(pool) or False)
    pool = VerifyPool()
    pool.measure_soon()
    pool.measure_soon()  # once only
    for _ in range(500):
        if pool.measured:
            break
        threading.Event().wait(0.002)
    assert pool.measured and not pool.parallel and len(runs) == 1
    assert _decide_cold(VALID[0][0], pool).granted and len(runs) == 1  # not again
    pool.close()


def test_the_measurement_compares_overlapped_with_sequential_verifies() -> None:
    pool = VerifyPool(parallel=True)
    helps = overlap_helps(pool, rounds=5)  # either answer, by this box; it never raises
    assert isinstance(helps, bool)
    assert 1 <= pool.handed <= 5  # a worker still busy with a taken-back job takes none
    pool.close()
