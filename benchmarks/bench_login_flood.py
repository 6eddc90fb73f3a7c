"""Login flood vs everyone else: p95 of a normal authenticated GET with and without 40 parallel
bad logins hammering central, and central's RSS peak.

A real `menjin central serve` (SQLite, a private Mosquitto) with its login limiter turned off,
as for an attacker with many addresses and user names: every bad login costs a full argon2
verification (64 MiB, ~3 passes), bounded by `[auth] hash_workers` (default: one per core) and
`hash_queue`. The flood runs in its own process (40 threads, each logging in again as soon as
it is answered); this process times GET /api/v1/gates with a viewer token every 20 ms.
Baseline: the same GETs, same central, before the flood starts.

Run: .venv/bin/python benchmarks/bench_login_flood.py [--seconds 20] [--threads 40]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from collections import Counter
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `tests` is not an installed package

from _stack import Mosquitto, percentile, print_load, print_machine  # noqa: E402

from central.auth import Role  # noqa: E402
from tests.integration.live_central import LiveCentral, start_central  # noqa: E402

GOAL_P95_S = 1.0
RSS_BOUND_MIB = 300.0  # above the idle RSS: two or so argon2 workers, not forty


def flood(url: str, threads: int, stop: MpEvent, out: mp.Queue[dict[int, int]]) -> None:
    codes: Counter[int] = Counter()
    lock = threading.Lock()

    def one(i: int) -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                guess = {"username": f"flood{i}", "password": "wrong password"}
                try:
                    code = client.post(f"{url}/api/v1/auth/token", data=guess).status_code
                except httpx.HTTPError:
                    code = 0
                with lock:
                    codes[code] += 1

    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put(dict(codes))


def timed_gets(c: LiveCentral, seconds: float, peak: list[int]) -> list[float]:
    headers = {"Authorization": f"Bearer {c.token(Role.VIEWER)}"}
    out = []
    with httpx.Client(timeout=60, headers=headers) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            r = client.get(f"{c.url}/api/v1/gates")
            out.append(time.perf_counter() - t0)
            r.raise_for_status()
            peak[0] = max(peak[0], c.rss_kib())
            time.sleep(0.02)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=40)
    args = ap.parse_args()
    print_machine(sys.argv, {"seconds": args.seconds, "threads": args.threads})
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir)
        broker.start()
        off = {"login_free_failures": 10**9, "login_free_failures_per_address": 10**9}
        c = start_central(workdir, broker.url, auth=off)
        try:
            run(c, args.seconds, args.threads)
        finally:
            c.proc.stop()
            broker.stop()


def run(c: LiveCentral, seconds: float, threads: int) -> None:
    timed_gets(c, 2.0, [0])  # warm up
    idle_rss = c.rss_kib()
    peak = [idle_rss]
    baseline = timed_gets(c, seconds, peak)
    base_peak = peak[0]
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=flood, args=(c.url, threads, stop, out))
    proc.start()
    time.sleep(2.0)  # let the flood reach its steady state
    peak = [c.rss_kib()]
    t0 = time.monotonic()
    flooded = timed_gets(c, seconds, peak)
    elapsed = time.monotonic() - t0
    stop.set()
    codes = out.get(timeout=180)
    proc.join(60)
    print_load("at end")
    b95, f95 = percentile(baseline, 0.95), percentile(flooded, 0.95)
    print(f"GET /api/v1/gates without flood: n={len(baseline)} p50 "
          f"{percentile(baseline, 0.5) * 1000:.1f} ms, p95 {b95 * 1000:.1f} ms")  # fmt: skip
    print(f"GET /api/v1/gates during flood:  n={len(flooded)} p50 "
          f"{percentile(flooded, 0.5) * 1000:.1f} ms, p95 {f95 * 1000:.1f} ms, "
          f"max {max(flooded) * 1000:.1f} ms")  # fmt: skip
    print(f"p95 ratio flood/baseline: {f95 / b95:.2f}x")
    total = sum(codes.values())
    print(f"flood logins answered: {total} ({total / (elapsed + 2.0):.1f}/s) by status {codes}")
    rise = (peak[0] - idle_rss) / 1024
    print(f"central RSS: idle {idle_rss / 1024:.1f} MiB, peak without flood "
          f"{base_peak / 1024:.1f} MiB, peak during flood {peak[0] / 1024:.1f} MiB "
          f"(+{rise:.1f} MiB)")  # fmt: skip
    met = f95 < GOAL_P95_S and rise < RSS_BOUND_MIB
    print(
        f"goal p95 < {GOAL_P95_S:.0f} s and RSS rise < {RSS_BOUND_MIB:.0f} MiB: "
        + ("met" if met else "NOT met")
    )
    if not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
