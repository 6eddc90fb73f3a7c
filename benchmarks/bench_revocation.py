"""A revocation at central enforced at an online gate: p50/p95, beside a raw paho hop.

Central and the gate agent run as real processes on a private broker. For each revocation the
benchmark writes it into central's database with `sync_store.revoke` (as the API does), then
publishes the SyncAnnouncement exactly as `Ingest.announce` does, and polls the gate's SQLite
file until the pass is in `revocations`. A sniffer on the gate's syncreq and delta topics
splits the time into hops. The raw baseline is a plain paho publish -> subscriber receive on
the same broker.

Run: .venv/bin/python benchmarks/bench_revocation.py [--n 50] [--pg]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from _stack import (
    CENTRAL_INGEST_DEFAULTS,
    GATE_MQTT_DEFAULTS,
    Mosquitto,
    Proc,
    central_config,
    central_proc,
    close_client,
    database,
    gate_config,
    gate_proc,
    log_problems,
    make_keys,
    percentile,
    print_load,
    print_machine,
    raw_client,
    raw_subscriber,
    read_only,
    utc_now,
    wait_http,
    wait_until,
)
from sqlalchemy import Engine

from central.config import load_central_settings
from central.store import presence, sync_store
from central.store.db import make_engine, upgrade
from edge.config import load_gate_settings
from protocol import topics
from protocol.messages import SyncAnnouncement
from protocol.topics import GateTopic

POLL_S = 0.005
TIMEOUT_S = 10.0
WARMUP = 3
GAP_S = 0.1  # between revocations, so each one starts from an idle stack
GOAL_P95_S = 2.0
SITE, GATE = "rv-site", "east"


@dataclass
class Sample:
    total: float  # write at central -> pass revoked in the gate's cache
    db: float  # the write transaction itself
    to_syncreq: float | None = None  # announcement published -> gate's SyncRequest seen
    to_delta: float | None = None  # announcement published -> central's SyncDelta seen


@dataclass
class Sniffer:
    """Timestamps of the gate's sync requests and central's deltas, as the broker relays them."""

    seen: dict[str, list[float]] = field(default_factory=lambda: {"syncreq": [], "delta": []})

    def note(self, kind: str) -> None:
        self.seen[kind].append(time.perf_counter())

    def first_after(self, kind: str, since: float) -> float | None:
        later = [t for t in self.seen[kind] if t >= since]
        return min(later) - since if later else None


@dataclass
class Running:
    engine: Engine
    cache_path: Path
    procs: list[Proc]


@contextmanager
def running_stack(workdir: Path, broker: Mosquitto, db_url: str) -> Iterator[Running]:
    """Central and one gate agent, registered, connected and synced once."""
    key = make_keys(workdir)
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        presence.register_gate(conn, SITE, GATE, utc_now())
    ccfg = central_config(workdir, db_url, broker.url, **CENTRAL_INGEST_DEFAULTS)
    gcfg = gate_config(workdir, SITE, GATE, broker.url, key, **GATE_MQTT_DEFAULTS)
    central, agent = central_proc(ccfg), gate_proc(gcfg)
    try:
        central.start()
        wait_http(load_central_settings(ccfg).http.port)
        time.sleep(1.5)  # /healthz answers before ingest's SUBACK
        agent.start()
        cache_path = load_gate_settings(gcfg).cache_path()
        wait_until(lambda: synced(cache_path), 30, "the gate's first sync", 0.1)
        yield Running(engine, cache_path, [agent, central])
    finally:
        for proc in (agent, central):
            proc.stop()
        engine.dispose()


def synced(cache_path: Path) -> bool:
    if not cache_path.exists():
        return False
    try:
        with closing(read_only(cache_path)) as conn:
            row = conn.execute("SELECT 1 FROM meta WHERE key = 'last_sync'").fetchone()
    except sqlite3.Error:
        return False
    return row is not None


def sniff(port: int) -> tuple[mqtt.Client, Sniffer]:
    sniffer = Sniffer()
    kinds = {GateTopic.SYNC_REQUEST.value: "syncreq", GateTopic.DELTA.value: "delta"}

    def note(topic: str, _payload: bytes) -> None:
        kind = kinds.get(topic.rsplit("/", 1)[1])
        if kind is not None:
            sniffer.note(kind)

    every_gate_topic = topics.gate_topic(SITE, GATE, GateTopic.EVENTS).rsplit("/", 1)[0] + "/+"
    return raw_subscriber(port, every_gate_topic, note, "bench-sniffer"), sniffer


def revoke_once(
    stack: Running, gate_db: sqlite3.Connection, announcer: mqtt.Client, sniffer: Sniffer
) -> Sample:
    pass_id = os.urandom(8).hex()
    t0 = time.perf_counter()
    with stack.engine.begin() as conn:
        version = sync_store.revoke(conn, pass_id, "bench", utc_now())
    t1 = time.perf_counter()
    announcer.publish(
        topics.sync_topic(SITE), SyncAnnouncement(version=version).model_dump_json(), qos=1
    )
    query = "SELECT 1 FROM revocations WHERE pass_id = ?"
    deadline = t0 + TIMEOUT_S
    while gate_db.execute(query, (pass_id,)).fetchone() is None:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"pass {pass_id} (version {version}) never reached the gate")
        time.sleep(POLL_S)
    done = time.perf_counter()
    return Sample(done - t0, t1 - t0, sniffer.first_after("syncreq", t1),
                  sniffer.first_after("delta", t1))  # fmt: skip


def measure_ours(stack: Running, port: int, n: int) -> list[Sample]:
    announcer = raw_client(port, "bench-announcer")
    sniffer_client, sniffer = sniff(port)
    gate_db = read_only(stack.cache_path)
    try:
        samples = []
        for _ in range(WARMUP + n):
            samples.append(revoke_once(stack, gate_db, announcer, sniffer))
            time.sleep(GAP_S)
        return samples[WARMUP:]
    finally:
        gate_db.close()
        close_client(sniffer_client)
        close_client(announcer)


def measure_raw(port: int, n: int) -> list[float]:
    """Publish at QoS 1 from one plain client; time until another's on_message runs."""
    arrived = threading.Event()
    sub = raw_subscriber(port, "bench/raw/rtt", lambda _t, _p: arrived.set(), "bench-raw-rtt-sub")
    pub = raw_client(port, "bench-raw-rtt-pub")
    try:
        samples = []
        for _ in range(WARMUP + n):
            arrived.clear()
            t0 = time.perf_counter()
            pub.publish("bench/raw/rtt", b'{"v": 1, "version": 18}', qos=1)
            if not arrived.wait(TIMEOUT_S):
                raise TimeoutError("raw message never arrived")
            samples.append(time.perf_counter() - t0)
            time.sleep(GAP_S)
        return samples[WARMUP:]
    finally:
        close_client(pub)
        close_client(sub)


# --- report ------------------------------------------------------------------------------------


def row(label: str, values: list[float]) -> tuple[float, float]:
    p50, p95 = percentile(values, 0.50), percentile(values, 0.95)
    print(f"  {label:<46} {p50 * 1000:8.1f} {p95 * 1000:8.1f} {max(values) * 1000:8.1f}")
    return p50, p95


def report(ours: list[Sample], raw: list[float]) -> None:
    print(f"\n  {'ms':<46} {'p50':>8} {'p95':>8} {'max':>8}")
    p50, p95 = row("ours: revoke at central -> revoked in gate cache", [s.total for s in ours])
    row("  of which the central DB write (revoke + commit)", [s.db for s in ours])
    for label, attr in (("  announce -> gate's SyncRequest seen", "to_syncreq"),
                        ("  announce -> central's SyncDelta seen", "to_delta")):  # fmt: skip
        seen = [v for s in ours if (v := getattr(s, attr)) is not None]
        if seen:
            row(label, seen)
    r50, r95 = row("raw: paho publish -> subscriber on_message", raw)
    print(f"\n  ours/raw: {p50 / r50:.1f}x at p50, {p95 / r95:.1f}x at p95")
    verdict = "met" if p95 < GOAL_P95_S else "NOT met"
    print(f"  goal p95 < {GOAL_P95_S:.0f} s: {verdict} ({p95 * 1000:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50, help="revocations to time")
    parser.add_argument("--pg", action="store_true", help="central on PostgreSQL (not SQLite)")
    args = parser.parse_args()
    print_machine(sys.argv, vars(args) | {"warmup": WARMUP, "poll_ms": POLL_S * 1000})
    with tempfile.TemporaryDirectory(prefix="bench-revocation-") as tmp:
        root = Path(tmp)
        broker = Mosquitto(root)
        broker.start()
        try:
            raw = measure_raw(broker.port, args.n)
            with database(root, args.pg) as url, running_stack(root, broker, url) as stack:
                ours = measure_ours(stack, broker.port, args.n)
                problems = [p for proc in stack.procs for p in log_problems(proc.log)]
        finally:
            broker.stop()
    print(f"\ncentral on {'PostgreSQL' if args.pg else 'SQLite'}, {args.n} revocations:")
    report(ours, raw)
    for problem in problems[:5]:
        print(f"  PROBLEM: {problem}")
    print_load("at end")


if __name__ == "__main__":
    main()
