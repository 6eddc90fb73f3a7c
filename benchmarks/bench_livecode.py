"""Live-code decision latency (two signatures, the replay memory) beside raw Ed25519 verify.

Run: .venv/bin/python benchmarks/bench_livecode.py [--n 20000]
The goal (issue #12): decide p99 for an Ed25519 phone's live code <= 2.5x one raw verify.
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

from benchmarks.bench_decide import fill_cache, percentile
from edge.cache import GateCache
from edge.decide import Direction, GateContext, decide
from protocol.epass import key_id_of, parse_pass
from protocol.epass_bound import encode_bound_pass
from protocol.livecode import slot_of
from tests.unit.livecode_helpers import ISSUER, RESIDENT, Phone, ed25519_phone, p256_phone

NOW = datetime.now(UTC)


def live_codes(phone: Phone, n: int) -> list[str]:
    slot = slot_of(NOW.timestamp())
    out = []
    for _ in range(n):
        data = replace(RESIDENT, pass_id=os.urandom(8), valid_until=int(NOW.timestamp()) + 86_400)
        out.append(phone.live(encode_bound_pass(data, phone.device, ISSUER), data.pass_id, slot))
    return out


def timed(texts: list[str], work: Callable[[str], object]) -> list[float]:
    samples = []
    for text in texts:
        t0 = time.perf_counter_ns()
        work(text)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000, help="presentations to time")
    parser.add_argument("--rows", type=int, default=100_000, help="revocations, usage rows")
    args = parser.parse_args()
    ctx = GateContext(site="hutong-12", gate="east", direction=Direction.IN,
                      trusted={key_id_of(ISSUER.verify_key): ISSUER.verify_key})  # fmt: skip
    ed_codes, p256_codes = (
        live_codes(ed25519_phone(), args.n),
        live_codes(p256_phone(), args.n // 4),
    )
    signed = [parse_pass(t) for t in ed_codes]
    with tempfile.TemporaryDirectory() as tmp:
        cache = GateCache(Path(tmp) / "bench.db")
        fill_cache(cache, args.rows)
        conn = cache.db.conn
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO live_codes VALUES (?, ?, 0)",
                         ((os.urandom(8).hex(), i) for i in range(args.rows)))  # fmt: skip
        conn.execute("COMMIT")

        def check(text: str) -> None:
            assert decide(text, ctx, cache, NOW).granted

        raw = timed(
            ed_codes, lambda t: ISSUER.verify_key.verify(signed[0].message, signed[0].signature)
        )
        ed = timed(ed_codes, check)
        p256 = timed(p256_codes, check)
        cache.close()
    raw50, raw99 = statistics.median(raw), percentile(raw, 0.99)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}"
    )
    print(f"cache: {args.rows:,} revocations, usage rows and remembered live codes")
    print(f"raw Ed25519 verify            p50 {raw50:7.1f} us  p99 {raw99:7.1f} us")
    for name, s in (("live code, Ed25519 phone", ed), ("live code, P-256 phone", p256)):
        p50, p99 = statistics.median(s), percentile(s, 0.99)
        print(f"decide {name:24s} p50 {p50:7.1f} us  p99 {p99:7.1f} us  "
              f"p99 = {p99 / raw99:4.2f}x raw p99, {p99 / raw50:4.2f}x raw p50")  # fmt: skip


if __name__ == "__main__":
    main()
