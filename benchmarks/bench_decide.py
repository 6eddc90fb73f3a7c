"""Decision latency with 100k revocations and 100k usage rows, beside raw Ed25519 verify.

Run: .venv/bin/python benchmarks/bench_decide.py [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nacl.signing import SigningKey

from edge.cache import GateCache
from edge.decide import AntiPassback, Direction, GateContext, TemperaturePolicy, decide
from protocol.epass import HolderKind, PassData, encode_pass, key_id_of, parse_pass
from protocol.messages import EventType

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_mirrored(cache: GateCache) -> None:
    """Until the store's pass-state mirror is in (it loads in the background once asked)."""
    while not cache.mirrored:
        time.sleep(0.001)


def fill_cache(cache: GateCache, rows: int) -> None:
    conn = cache.db.conn
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO revocations VALUES (?, 'bench', 0, NULL, 'bench')",
        ((os.urandom(8).hex(),) for _ in range(rows)),
    )
    conn.executemany(
        "INSERT INTO usage VALUES (?, 3, 0, 'out', 'east', NULL)",
        ((os.urandom(8).hex(),) for _ in range(rows)),
    )
    conn.execute("COMMIT")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000, help="presentations to time")
    parser.add_argument("--rows", type=int, default=100_000, help="revocations and usage rows")
    args = parser.parse_args()

    key = SigningKey.generate()
    ctx = GateContext(
        site="hutong-12",
        gate="east",
        trusted={key_id_of(key.verify_key): key.verify_key},
        direction=Direction.IN,
        temperature=TemperaturePolicy.REQUIRED,
        anti_passback=AntiPassback.SOFT,
    )
    texts = [
        encode_pass(
            PassData(
                pass_id=os.urandom(8),
                site="hutong-12",
                kind=HolderKind.RESIDENT,
                valid_from=int((NOW - timedelta(days=30)).timestamp()),
                valid_until=int((NOW + timedelta(days=300)).timestamp()),
                display_name="张*华",
                gates=("east", "west"),
                hours=(360, 1380),
                max_uses=1000,
            ),
            key,
        )
        for _ in range(args.n)
    ]
    signed = [parse_pass(t) for t in texts]

    with tempfile.TemporaryDirectory() as tmp:
        cache = GateCache(Path(tmp) / "bench.db")
        fill_cache(cache, args.rows)
        cache.close()  # written past the store's methods: opened again, as at a gate's start
        cache = GateCache(Path(tmp) / "bench.db")
        wait_mirrored(cache)

        raw: list[float] = []
        for s in signed:
            t0 = time.perf_counter_ns()
            key.verify_key.verify(s.message, s.signature)
            raw.append((time.perf_counter_ns() - t0) / 1000)

        ours: list[float] = []
        for text in texts:
            t0 = time.perf_counter_ns()
            d = decide(text, ctx, cache, NOW, 36.5)
            ours.append((time.perf_counter_ns() - t0) / 1000)
            assert d.granted, d

        journal: list[float] = []
        for text in texts[:2000]:
            t0 = time.perf_counter_ns()
            d = decide(text, ctx, cache, NOW, 36.5)
            cache.journal_append(
                EventType.DECISION, NOW, granted=d.granted, reason=d.reason.value,
                pass_id=d.pass_id, temperature_c=36.5, details={"flags": list(d.flags)},
                use=("east", "in", d.valid_until),
            )  # fmt: skip
            journal.append((time.perf_counter_ns() - t0) / 1000)
        cache.close()

    raw_p50, raw_p99 = statistics.median(raw), percentile(raw, 0.99)
    p50, p99 = statistics.median(ours), percentile(ours, 0.99)
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"cache: {args.rows:,} revocations + {args.rows:,} usage rows; {args.n:,} passes")
    print(f"raw Ed25519 verify     p50 {raw_p50:7.1f} us  p99 {raw_p99:7.1f} us")
    print(f"decide (full policy)   p50 {p50:7.1f} us  p99 {p99:7.1f} us  "
          f"{1e6 / statistics.mean(ours):,.0f} decisions/s")  # fmt: skip
    print(f"ratio to raw verify    p50 {p50 / raw_p50:5.2f}x    p99 {p99 / raw_p99:5.2f}x "
          f"(p99 vs raw p50: {p99 / raw_p50:.2f}x)")  # fmt: skip
    print(f"decide + durable journal (synchronous=FULL) p50 {statistics.median(journal):7.1f} us"
          f"  p99 {percentile(journal, 0.99):7.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
