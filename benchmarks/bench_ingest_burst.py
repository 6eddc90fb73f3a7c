"""Central's memory under a burst of gate events (#8): RSS before, peak during, time to store.

A private Mosquitto and a real `menjin central serve` (SQLite) with `--gates` registered gates.
Publisher processes send `--events` journal entries as EventBatch messages of `--per-message`
entries each, at QoS 1, as fast as the broker takes them. Central's RSS is read from /proc
(VmRSS when idle, VmHWM = peak at the end); the clock runs until central holds every entry.

Raw baseline, in the same run: a plain paho subscriber process that keeps every payload it
receives (what an unbounded ingest queue does), for the same messages; its RSS growth is what
holding the burst costs before any parsing or storing.

`--central-pythonpath DIR` runs central from another source tree (e.g. an export of an older
commit), so before/after figures come from the same script.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

from _stack import (
    CENTRAL_INGEST_DEFAULTS,
    Mosquitto,
    central_config,
    close_client,
    make_keys,
    print_load,
    print_machine,
    raw_client,
    raw_subscriber,
    sample_event,
    wait_http,
)
from sqlalchemy import create_engine, func, select

from central.store import presence
from central.store.db import make_engine, upgrade
from central.store.tables import events
from protocol import topics
from protocol.messages import EventBatch
from protocol.topics import GateTopic
from tests.integration.stack import MENJIN

SITE = "burst"
MAX_PENDING = 1000  # paho refuses more than 65,535 unacked QoS 1 messages


def messages(gates: int, total: int, per_message: int, epoch: int = 1) -> list[tuple[str, bytes]]:
    """(topic, payload) for `total` entries spread over the gates, in seq order per gate."""
    out = []
    per_gate = total // gates
    for g in range(gates):
        gate = f"g{g:03d}"
        for first in range(1, per_gate + 1, per_message):
            seqs = range(first, min(first + per_message, per_gate + 1))
            batch = EventBatch(
                site=SITE, gate=gate, epoch_first_seq={epoch: 1},
                events=[sample_event(seq=s, epoch=epoch) for s in seqs],
            )  # fmt: skip
            out.append(
                (topics.gate_topic(SITE, gate, GateTopic.EVENTS), batch.model_dump_json().encode())
            )
    return out


def _publish(port: int, items: list[tuple[str, bytes]], ready: MpEvent, go: MpEvent) -> None:
    client = raw_client(port, f"bench-burst-{os.getpid()}")
    pending: list[object] = []
    ready.set()
    go.wait()
    for topic, payload in items:
        pending.append(client.publish(topic, payload, qos=1))
        while len(pending) >= MAX_PENDING:
            pending = [p for p in pending if not p.is_published()]  # type: ignore[attr-defined]
            time.sleep(0.001)
    while any(not p.is_published() for p in pending):  # type: ignore[attr-defined]
        time.sleep(0.01)
    close_client(client)


def burst(port: int, items: list[tuple[str, bytes]], publishers: int) -> list[mp.Process]:
    """Start the publishers and release them together; returns them running."""
    ready = [mp.Event() for _ in range(publishers)]
    go = mp.Event()
    shares: list[list[tuple[str, bytes]]] = [[] for _ in range(publishers)]
    for topic, payload in items:  # each gate's messages from one publisher, in seq order
        shares[int(topic.split("/")[3][1:]) % publishers].append((topic, payload))
    procs = [
        mp.Process(target=_publish, args=(port, shares[i], ready[i], go)) for i in range(publishers)
    ]
    for p in procs:
        p.start()
    for r in ready:
        r.wait(30)
    go.set()
    return procs


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _raw_keeper(port: int, count: int, ready: MpEvent, result: mp.Queue) -> None:  # type: ignore[type-arg]
    kept: list[bytes] = []
    client = raw_subscriber(
        port, f"{topics.PREFIX}/{SITE}/+/events", lambda t, p: kept.append(p), "bench-keeper"
    )
    idle = rss_kb(os.getpid())
    ready.set()
    while len(kept) < count:
        time.sleep(0.01)
    result.put((idle, rss_kb(os.getpid(), "VmHWM")))
    close_client(client)


def raw_baseline(
    broker: Mosquitto, items: list[tuple[str, bytes]], publishers: int
) -> tuple[float, int, int]:
    """(seconds, idle kB, peak kB) for a plain subscriber that keeps every payload."""
    ready, result = mp.Event(), mp.Queue()
    keeper = mp.Process(target=_raw_keeper, args=(broker.port, len(items), ready, result))
    keeper.start()
    ready.wait(30)
    started = time.monotonic()
    for p in burst(broker.port, items, publishers):
        p.join()
    idle, peak = result.get(timeout=600)
    keeper.join()
    return time.monotonic() - started, idle, peak


def register(db_url: str, gates: int) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        for g in range(gates):
            presence.register_gate(conn, SITE, f"g{g:03d}", datetime.now(UTC))
    engine.dispose()


def stored_count(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())
    finally:
        engine.dispose()


def run_central(
    workdir: Path, broker: Mosquitto, pythonpath: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`menjin central serve` on SQLite with the shipped ingest settings."""
    db_url = f"sqlite:///{workdir / 'central.db'}"
    return run_central_on(workdir, broker, db_url, pythonpath), db_url


def run_central_on(
    workdir: Path, broker: Mosquitto, db_url: str, pythonpath: str = ""
) -> subprocess.Popen[bytes]:
    """`menjin central serve` with the shipped ingest settings, from another tree if asked."""
    if not (workdir / "keys").exists():  # central refuses to start without its signing key
        make_keys(workdir)
    config = central_config(workdir, db_url, broker.url, **CENTRAL_INGEST_DEFAULTS)
    port_line = next(ln for ln in config.read_text().splitlines() if ln.startswith("port"))
    env = os.environ | ({"PYTHONPATH": pythonpath} if pythonpath else {})
    with (workdir / "central.log").open("wb") as log:
        proc = subprocess.Popen(
            [MENJIN, "central", "serve", "--config", str(config), "--log-level", "WARNING"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    wait_http(int(port_line.split("=")[1]))
    return proc


def measure_central(
    workdir: Path, broker: Mosquitto, items: list[tuple[str, bytes]], args: argparse.Namespace
) -> tuple[float, int, int, int, int]:
    """(seconds until all stored, stored, expected, idle kB, peak kB)."""
    register(f"sqlite:///{workdir / 'central.db'}", args.gates)
    proc, db_url = run_central(workdir, broker, args.central_pythonpath)
    try:
        time.sleep(3.0)
        idle = rss_kb(proc.pid)
        started = time.monotonic()
        publishers = burst(broker.port, items, args.publishers)
        expected = args.gates * (args.events // args.gates)
        got = 0
        while time.monotonic() < started + 900 and (got := stored_count(db_url)) < expected:
            time.sleep(0.25)
        took = time.monotonic() - started
        for p in publishers:
            p.join()
        return took, got, expected, idle, rss_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(30)


def mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--events", type=int, default=150_000)
    ap.add_argument("--per-message", type=int, default=1)
    ap.add_argument("--gates", type=int, default=10)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--central-pythonpath", default="", help="Run central from this source tree.")
    args = ap.parse_args()
    print_machine(sys.argv, vars(args))
    items = messages(args.gates, args.events, args.per_message)
    print(f"burst: {len(items)} messages, {sum(len(p) for _, p in items) / 2**20:.1f} MB payload")
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        try:
            raw_s, raw_idle, raw_peak = raw_baseline(broker, items, args.publishers)
            print(f"raw keeper: {raw_s:.2f} s; RSS idle {mb(raw_idle)}, peak {mb(raw_peak)}")
            took, got, expected, idle, peak = measure_central(Path(tmp), broker, items, args)
        finally:
            broker.stop()
    print_load("at end")
    print(f"central: stored {got}/{expected} in {took:.2f} s; RSS idle {mb(idle)}, peak {mb(peak)}")
    growth = (peak - idle) / max(1, raw_peak - raw_idle)
    print(f"central/raw: time {took / raw_s:.2f}x, RSS growth {growth:.2f}x")


if __name__ == "__main__":
    main()
