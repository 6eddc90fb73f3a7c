"""Live-code decision latency (two signatures, the replay memory) beside raw Ed25519 verify.

Run: .venv/bin/python benchmarks/bench_livecode.py [--n 20000]
The goal (issue #12): decide p99 for an Ed25519 phone's live code <= 2.5x one raw verify.
"Pre-verified" is a pass's first code in this process whose issuer signature the gate's store
remembers verifying (as after a restart); "new pass" is one the gate has never verified; "store
read" is a new pass decided with the store's in-memory mirror off (every question to SQLite);
"hinted" is a new pass whose static text came with a delta and was pre-verified in the background
(edge/pass_hints.py, SyncDelta.passes) before its first code; "sequential" is a new pass with the
verify pool switched off (both signatures on this thread),
"pool forced on" one with the issuer's checked in the pool's worker whatever its measurement.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_decide import fill_cache, percentile, wait_mirrored
from edge.cache import GateCache, Retention
from edge.decide import Direction, GateContext, decide
from edge.pass_hints import BATCH, PassHints
from edge.sigmemo import SignatureMemo, signature_digest
from edge.verify_pool import VerifyPool
from protocol.epass import key_id_of, parse_pass
from protocol.epass_bound import encode_bound_pass
from protocol.livecode import live_message, nearest_slot, slot_of
from tests.unit.livecode_helpers import ISSUER, RESIDENT, Phone, ed25519_phone, p256_phone

NOW = datetime.now(UTC)


def live_codes(phone: Phone, n: int) -> tuple[list[str], list[str], list[str]]:
    """n live codes of n passes for this slot, the same passes' codes for the next slot, and
    their static texts."""
    slot = slot_of(NOW.timestamp())
    now, nxt, statics = [], [], []
    for _ in range(n):
        data = replace(RESIDENT, pass_id=os.urandom(8), valid_until=int(NOW.timestamp()) + 86_400)
        static = encode_bound_pass(data, phone.device, ISSUER)
        now.append(phone.live(static, data.pass_id, slot))
        nxt.append(phone.live(static, data.pass_id, slot + 1))
        statics.append(static)
    return now, nxt, statics


def interleaved(texts: list[str], work: Callable[[str], object]) -> tuple[list[float], list[float]]:
    """Time one raw issuer-signature verify and one `work` per text, alternately, so a busy
    machine slows both alike."""
    raw, ours = [], []
    for text in texts:
        signed = parse_pass(text)
        t0 = time.perf_counter_ns()
        ISSUER.verify_key.verify(signed.message, signed.signature)
        t1 = time.perf_counter_ns()
        work(text)
        t2 = time.perf_counter_ns()
        raw.append((t1 - t0) / 1000)
        ours.append((t2 - t1) / 1000)
    return raw, ours


def signatures_only(texts: list[str]) -> Callable[[str], object]:
    """A live code's two signature checks and nothing else: the floor under decide()."""
    parsed = {text: parse_pass(text) for text in texts}

    def work(text: str) -> None:
        signed = parsed[text]
        assert signed.device is not None and signed.proof is not None
        slot = nearest_slot(signed.proof.residue, NOW.timestamp())
        ISSUER.verify_key.verify(signed.message, signed.signature)
        assert signed.device.verify(live_message(signed.data.pass_id, slot), signed.proof.signature)

    return work


def pre_verify(cache: GateCache, ctx: GateContext, statics: list[str]) -> float:
    """The passes' static texts pre-verified as a delta's are; microseconds per text."""
    hints = PassHints(cache, lambda: ctx)
    t0 = time.perf_counter()
    for i in range(0, len(statics), BATCH):
        hints.check_batch(statics[i : i + BATCH])
    took = time.perf_counter() - t0
    assert hints.verified == len(statics)
    return took / len(statics) * 1e6


def rss_mib() -> float:
    """This process's resident memory now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_store(path: Path) -> tuple[GateCache, GateCache, float, float]:
    """The store with its mirror and without; the mirror's load time (ms) and RSS (MiB)."""
    unmirrored = GateCache(path, Retention(max_mirrored_rows=0))
    before = rss_mib()
    t0 = time.perf_counter()
    cache = GateCache(path)
    wait_mirrored(cache)
    load_ms = (time.perf_counter() - t0) * 1000
    assert not unmirrored.mirrored
    return cache, unmirrored, load_ms, rss_mib() - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000, help="presentations to time")
    parser.add_argument("--rows", type=int, default=100_000, help="revocations, usage rows")
    args = parser.parse_args()
    ctx = GateContext(site="hutong-12", gate="east", direction=Direction.IN,
                      trusted={key_id_of(ISSUER.verify_key): ISSUER.verify_key})  # fmt: skip
    pool_on = ctx.verify_pool.calibrate()  # what the gate's first cold first codes will find
    ed_codes, ed_next, _ = live_codes(ed25519_phone(), args.n)
    stored_codes, _, _ = live_codes(ed25519_phone(), args.n)
    hinted_codes, _, hinted_statics = live_codes(ed25519_phone(), args.n)
    p256_codes, _, _ = live_codes(p256_phone(), args.n // 4)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        cache = GateCache(path)
        fill_cache(cache, args.rows)
        conn = cache.db.conn
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO live_codes VALUES (?, ?, 0)",
                         ((os.urandom(8).hex(), i) for i in range(args.rows)))  # fmt: skip
        conn.executemany("INSERT INTO verified_signatures VALUES (?, ?, NULL, 0)",
                         ((os.urandom(32), os.urandom(4)) for _ in range(args.rows)))  # fmt: skip
        conn.executemany(  # what the journal entries of these passes' earlier grants stored
            "INSERT INTO verified_signatures VALUES (?, ?, NULL, 0)",
            ((signature_digest(parse_pass(t), ISSUER.verify_key), key_id_of(ISSUER.verify_key))
             for t in stored_codes),
        )  # fmt: skip
        conn.execute("COMMIT")
        cache.close()  # written past the store's methods: opened again, as at a gate's start
        cache, unmirrored, load_ms, mirror_mib = open_store(path)
        hint_us = pre_verify(cache, ctx, hinted_statics)
        restarted = replace(ctx, verified=SignatureMemo())  # an empty memory, as after a restart
        cold = replace(ctx, verified=SignatureMemo())  # new to these passes, as to new ones
        # The same new passes on one core's path: the pool off, both verifies on this thread;
        # and with the pool forced on, whatever its measurement found.
        one_core = replace(ctx, verified=SignatureMemo(), verify_pool=VerifyPool(parallel=False))
        forced = replace(ctx, verified=SignatureMemo(), verify_pool=VerifyPool(parallel=True))

        def check(text: str, ctx: GateContext = ctx, store: GateCache = cache) -> None:
            assert decide(text, ctx, store, NOW).granted

        def check_restarted(text: str) -> None:
            d = decide(text, restarted, cache, NOW)
            assert d.granted and d.signature_digest is None  # the store vouched for it

        runs = {
            "Ed25519 phone, new pass": interleaved(ed_codes, check),  # two signature checks
            "new pass, sequential": interleaved(ed_codes, lambda t: check(t, one_core)),
            "new pass, pool forced on": interleaved(ed_codes, lambda t: check(t, forced)),
            "Ed25519 phone, pass seen": interleaved(ed_next, check),  # issuer's remembered
            "Ed25519, pre-verified": interleaved(stored_codes, check_restarted),  # in the store
            "Ed25519, hinted": interleaved(hinted_codes, check_restarted),  # by pass hints
            "P-256 phone, new pass": interleaved(p256_codes, check),
            "floor: 2 verifies only": interleaved(ed_codes, signatures_only(ed_codes)),
            "new pass, store read": interleaved(ed_codes, lambda t: check(t, cold, unmirrored)),
        }
        assert cache.mirrored  # no decision above read SQLite
        cache.close()
        unmirrored.close()
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()},"
        f" verify pool {'on' if pool_on else 'off'} by its measurement"
    )
    pool = forced.verify_pool
    print(f"pool forced on: {pool.handed:,} issuer checks handed to the worker, {pool.taken_back:,}"
          " taken back (not begun when the phone's was checked)")  # fmt: skip
    print(
        f"pass hints: {len(hinted_statics):,} static texts pre-verified in the background,"
        f" {hint_us:.0f} us each (parse, checks, verify, one transaction per {BATCH})"
    )
    print(f"cache: {args.rows:,} revocations, usage rows, live codes and verified signatures;"
          f" mirror loaded in {load_ms:.0f} ms, RSS +{mirror_mib:.1f} MiB")  # fmt: skip
    for name, (raw, ours) in runs.items():
        r50, r99, p50, p99 = (statistics.median(raw), percentile(raw, 0.99),
                              statistics.median(ours), percentile(ours, 0.99))  # fmt: skip
        print(f"{name:25s} raw verify p50 {r50:6.1f} p99 {r99:6.1f} us | decide p50 {p50:6.1f}"
              f" p99 {p99:6.1f} us | p50 {p50 / r50:4.2f}x  p99 {p99 / r99:4.2f}x raw")  # fmt: skip


if __name__ == "__main__":
    main()
