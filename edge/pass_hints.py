"""Pre-verifying the device-bound passes central sends with a delta (SyncDelta.passes).

A live code of a pass this gate never saw costs two verifies, the issuer's over the pass and
the phone's proof; with the issuer's signature already remembered as verified (the store's
verified_signatures) it costs one. Central therefore sends each gate the static texts of its
site's device-bound passes as they are bound to phones, and this checks their issuer signatures
on a thread of its own, never on the message callback's or a decision's, and records the good
ones as a granted decision records its digest, so a resident's first live code here is decided
with one verify.

What arrives is advisory and untrusted: a text that is no static device-bound pass, is for
another site or gate, is signed by a key the gate does not trust, has expired, or does not
verify is counted and logged, and nothing of it is remembered. The queue is bounded; what does
not fit is dropped and counted (the gate only decides that pass's first code more slowly).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from enum import StrEnum
from typing import Protocol

from edge.decide import GateContext, PassRecord
from edge.sigmemo import signature_digest
from protocol.epass import PassFormatError, parse_pass, signature_valid

log = logging.getLogger(__name__)

MAX_QUEUED = 4000  # two full deltas' worth of texts
BATCH = 250  # texts per store transaction: the store's lock is held for one batch's inserts
LOG_EVERY_S = 60.0  # one log line per refusal reason per minute, with the running count
NICENESS = 10  # the worker's own scheduling priority below the deciding thread's (Linux)

# What the store records for one good signature: (digest, key id, the pass's valid_until).
Verified = tuple[bytes, bytes, float | None]


class HintRefusal(StrEnum):
    """Why a text central sent was not remembered; the log line names it."""

    MALFORMED = "malformed"
    NOT_DEVICE_BOUND = "not_device_bound"
    LIVE_CODE = "live_code"
    WRONG_SITE = "wrong_site"
    WRONG_GATE = "wrong_gate"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED = "expired"
    BAD_SIGNATURE = "bad_signature"


class HintStore(Protocol):
    """The two questions the pre-verifier asks of the gate's store (edge/cache.py)."""

    def pass_record(
        self, pass_id: str, live_slot: int | None, signature_digest: bytes | None
    ) -> PassRecord: ...

    def remember_signatures(
        self, verified: Sequence[Verified], trusted: Callable[[], Collection[bytes]]
    ) -> int: ...


class RefusedError(Exception):
    """A text the pre-verifier will not remember, and why."""

    def __init__(self, why: HintRefusal, detail: str = "") -> None:
        super().__init__(detail)
        self.why = why


class PassHints:
    """A bounded queue of pass texts and the worker thread that verifies them."""

    def __init__(
        self,
        store: HintStore,
        context: Callable[[], GateContext],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.context, self.clock = store, context, clock
        self.verified = 0
        self.known = 0  # remembered already: nothing to do
        self.dropped = 0
        self.refused: Counter[HintRefusal] = Counter()
        self._queue: queue.Queue[str] = queue.Queue(MAX_QUEUED)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._logged: dict[HintRefusal, float] = {}

    def start(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            if not self._stop.is_set():
                return  # running
            self._worker.join()  # a close() that timed out: its batch ends first, never two
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="pass-hints", daemon=True)
        self._worker.start()

    def close(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            if not self._worker.is_alive():  # else a later start() would run a second one
                self._worker = None

    def offer(self, texts: Sequence[str]) -> None:
        """Queue texts for the worker (from the MQTT callback: never blocks, drops when full)."""
        for i, text in enumerate(texts):
            try:
                self._queue.put_nowait(text)
            except queue.Full:
                self.dropped += len(texts) - i
                log.warning("pass hints: queue full, %d texts dropped (%d so far)",
                            len(texts) - i, self.dropped)  # fmt: skip
                return

    def counters(self) -> dict[str, int]:
        return {
            "pass_hints_verified": self.verified,
            "pass_hints_known": self.known,
            "pass_hints_rejected": self.refused.total(),
            "pass_hints_dropped": self.dropped,
        }

    # --- the worker --------------------------------------------------------------------------

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # on Linux a thread id is one thread
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        while not self._stop.is_set():
            batch = self._take()
            if not batch:
                continue
            try:
                self.check_batch(batch)
            except Exception:  # a store error, a bug: the next batch tries again
                log.exception("pass hints: a batch of %d failed", len(batch))

    def _take(self) -> list[str]:
        try:
            batch = [self._queue.get(timeout=0.5)]
        except queue.Empty:
            return []
        while len(batch) < BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def check_batch(self, texts: Sequence[str]) -> int:
        """Verify texts against the current policy; remember the good ones in one transaction
        and return how many."""
        ctx = self.context()
        now = self.clock()
        good: dict[bytes, Verified] = {}
        for text in texts:
            try:
                found = self._check(text, ctx, now)
            except RefusedError as exc:
                self._refuse(exc)
                continue
            if found is None or found[0] in good:
                self.known += 1
            else:
                good[found[0]] = found
        # A policy applied meanwhile may have dropped a key (and forgotten its rows): keep none
        # of its signatures. A row for an untrusted key would vouch for nothing, but would stay;
        # the store asks which keys are trusted under its lock (GateCache.remember_signatures).
        kept = self.store.remember_signatures(list(good.values()), lambda: self.context().trusted)
        self.verified += kept
        return kept

    def _check(self, text: str, ctx: GateContext, now: float) -> Verified | None:
        """The record for one good text, None when it is remembered already; RefusedError."""
        try:
            signed = parse_pass(text)
        except PassFormatError as exc:
            raise RefusedError(HintRefusal.MALFORMED, str(exc)) from None
        if signed.device is None:
            raise RefusedError(HintRefusal.NOT_DEVICE_BOUND)
        if signed.proof is not None:
            raise RefusedError(HintRefusal.LIVE_CODE)
        data = signed.data
        if not signed.for_site(ctx.site):
            raise RefusedError(HintRefusal.WRONG_SITE)
        if not signed.for_gate(ctx.gate):
            raise RefusedError(HintRefusal.WRONG_GATE)
        key = ctx.trusted.get(signed.key_id)
        if key is None:
            raise RefusedError(HintRefusal.UNKNOWN_KEY, signed.key_id.hex())
        if now - ctx.clock_skew_s >= data.valid_until:
            raise RefusedError(HintRefusal.EXPIRED)
        if ctx.verified.remembered(signed, key):
            return None
        digest = signature_digest(signed, key)
        if self.store.pass_record(data.pass_id_hex, None, digest).signature_verified:
            return None
        if not signature_valid(signed, key):
            raise RefusedError(HintRefusal.BAD_SIGNATURE, data.pass_id_hex)
        return digest, signed.key_id, data.valid_until

    def _refuse(self, exc: RefusedError) -> None:
        self.refused[exc.why] += 1
        now = time.monotonic()
        if now - self._logged.get(exc.why, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[exc.why] = now
            detail = f" ({exc})" if str(exc) else ""
            log.warning("pass hint refused: %s%s; %d so far", exc.why.value, detail,
                        self.refused[exc.why])  # fmt: skip
