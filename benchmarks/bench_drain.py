"""Journal drain after an outage: gate journal -> MQTT -> central, beside raw paho QoS 1.

A gate's journal holds N decisions when its agent starts (as after weeks without an uplink);
the clock runs from `menjin gate run` until central has stored every entry and the gate's
backlog is 0. The raw baseline, on the same broker in the same run, is a plain paho client
publishing N messages of one journal entry's JSON at QoS 1 to a plain paho subscriber. Then,
on PostgreSQL, several gates drained by one central replica and by two.

Run: .venv/bin/python benchmarks/bench_drain.py [--n 100000] [--pg] [--batch-size B --window W]
     [--sweep 500:4,100:16] [--gates 4] [--replica-n 40000] [--no-replicas]
     [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _stack import (
    CENTRAL_INGEST_DEFAULTS,
    GATE_MQTT_DEFAULTS,
    Mosquitto,
    Proc,
    central_config,
    central_proc,
    cpu_seconds,
    database,
    duplicates,
    fill_journal,
    gate_config,
    gate_proc,
    journal_counts,
    log_problems,
    machine_busy,
    make_keys,
    pg_schema,
    print_load,
    print_machine,
    raw_drain,
    read_only,
    sample_event,
    utc_now,
    wait_http,
)
from sqlalchemy import create_engine, func, select

from central.config import load_central_settings
from central.store import presence
from central.store.db import make_engine, upgrade
from central.store.tables import events, lost_events
from edge.config import load_gate_settings

POLL_S = 0.25
DRAIN_TIMEOUT_S = 900.0
GOAL = 0.5  # ours / raw


# --- our drain ---------------------------------------------------------------------------------


@dataclass
class Stack:
    """Registered gates with full journals, and central replicas, not yet started."""

    db_url: str
    site: str
    caches: list[Path]
    agents: list[Proc]
    centrals: list[tuple[Proc, int]]


@dataclass
class DrainRun:
    label: str
    events: int
    seconds: float  # agent start -> every entry stored and acked
    first_s: float  # agent start -> the first ack reached any gate
    cpu: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0  # share of all CPUs busy during the drain
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def steady_rate(self) -> float:
        return self.events / max(1e-9, self.seconds - self.first_s)


def build_stack(
    workdir: Path,
    broker: Mosquitto,
    db_url: str,
    gates: int,
    per_gate: int,
    replicas: int = 1,
    mqtt: dict[str, object] | None = None,
) -> Stack:
    """Register the gates at central, fill their journals, write every config."""
    key = make_keys(workdir)
    site = f"bench{int(time.time() * 1000) % 10**9}"
    names = [f"g{i}" for i in range(gates)]
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        for name in names:
            presence.register_gate(conn, site, name, utc_now())
    engine.dispose()
    caches, agents = [], []
    for name in names:
        cfg = gate_config(
            workdir, site, name, broker.url, key, **(GATE_MQTT_DEFAULTS | (mqtt or {}))
        )
        caches.append(load_gate_settings(cfg).cache_path())
        fill_journal(caches[-1], per_gate)
        agents.append(gate_proc(cfg))
    centrals = []
    for _ in range(replicas):
        ccfg = central_config(workdir, db_url, broker.url, **CENTRAL_INGEST_DEFAULTS)
        centrals.append((central_proc(ccfg), load_central_settings(ccfg).http.port))
    return Stack(db_url, site, caches, agents, centrals)


def start_centrals(stack: Stack) -> None:
    for proc, _ in stack.centrals:
        proc.start()
    for _, port in stack.centrals:
        wait_http(port)
    time.sleep(1.5)  # /healthz answers before ingest's CONNACK and SUBACK; let them land


def stop_all(stack: Stack) -> None:
    for proc in stack.agents:
        proc.stop()
    for proc, _ in stack.centrals:
        proc.stop()


class Progress:
    """Polls the gates' journals and central's event count."""

    def __init__(self, stack: Stack) -> None:
        self.site = stack.site
        self.engine = create_engine(stack.db_url)
        self.gates = [read_only(path) for path in stack.caches]
        self.entries = 0
        self.unacked = 0
        self.stored = 0

    def poll(self) -> None:
        counts = [journal_counts(conn) for conn in self.gates]
        self.entries = sum(c[0] for c in counts)
        self.unacked = sum(c[1] for c in counts)
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(events).where(events.c.site == self.site)
            self.stored = int(conn.execute(query).scalar_one())

    def done(self) -> bool:
        return self.unacked == 0 and self.stored >= self.entries

    def close(self) -> None:
        for conn in self.gates:
            conn.close()
        self.engine.dispose()


def pids(stack: Stack, broker: Mosquitto) -> dict[str, list[int]]:
    """Process ids by role; a process not started yet has none."""

    def pid(proc: Proc | Mosquitto) -> list[int]:
        return [] if proc.proc is None else [proc.proc.pid]

    return {
        "agents": [i for p in stack.agents for i in pid(p)],
        **{f"central{i + 1}": pid(p) for i, (p, _) in enumerate(stack.centrals)},
        "mosquitto": pid(broker),
    }


def wait_drained(progress: Progress, t0: float, label: str) -> tuple[float, float]:
    """Poll until done; returns (seconds to done, seconds to the first ack), both from t0."""
    journalled = progress.entries
    first = None
    while time.monotonic() - t0 < DRAIN_TIMEOUT_S:
        progress.poll()
        if first is None and progress.unacked < journalled:
            first = time.monotonic() - t0
        if progress.done():
            seconds = time.monotonic() - t0
            return seconds, first or seconds
        time.sleep(POLL_S)
    raise TimeoutError(f"{label}: {progress.stored} stored, {progress.unacked} unacked")


def timed_drain(stack: Stack, broker: Mosquitto, label: str) -> DrainRun:
    """Start the agents and wait for central to hold every entry and every backlog to be 0."""
    start_centrals(stack)
    progress = Progress(stack)
    try:
        progress.poll()
        busy0, total0 = machine_busy()
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids(stack, broker).items()}
        t0 = time.monotonic()
        for agent in stack.agents:
            agent.start()
        seconds, first = wait_drained(progress, t0, label)
        busy1, total1 = machine_busy()
        cpu = {k: sum(cpu_seconds(p) for p in v) for k, v in pids(stack, broker).items()}
        busy = (busy1 - busy0) / max(1.0, total1 - total0)
        cpu = {k: v - cpu0.get(k, 0.0) for k, v in cpu.items()}
        return DrainRun(label, progress.entries, seconds, first, cpu, busy)
    finally:
        progress.close()


def check_stored(run: DrainRun, stack: Stack) -> None:
    """Exactly once, nothing recorded lost, no errors logged: otherwise the rate means little."""
    dups = duplicates(stack.db_url)
    engine = create_engine(stack.db_url)
    with engine.connect() as conn:
        lost = int(conn.execute(select(func.count()).select_from(lost_events)).scalar_one())
    engine.dispose()
    if dups or lost:
        run.problems.append(f"{dups} duplicate keys, {lost} lost ranges at central")
    for proc in [*stack.agents, *(p for p, _ in stack.centrals)]:
        found = log_problems(proc.log)
        if found:
            kinds = [p for p in found if " ERROR " not in p and " CRITICAL " not in p]
            run.problems.append(f"{proc.log.name}: {found[0][24:]}; {', '.join(kinds)}")


def drain(
    workdir: Path,
    broker: Mosquitto,
    db_url: str,
    label: str,
    gates: int,
    per_gate: int,
    replicas: int = 1,
    mqtt: dict[str, object] | None = None,
) -> DrainRun:
    workdir.mkdir(parents=True, exist_ok=True)
    stack = build_stack(workdir, broker, db_url, gates, per_gate, replicas, mqtt)
    try:
        run = timed_drain(stack, broker, label)
    finally:
        stop_all(stack)
    check_stored(run, stack)
    return run


# --- report ------------------------------------------------------------------------------------


def print_run(run: DrainRun, raw_rate: float | None) -> None:
    ratio = f"{run.rate / raw_rate:5.2f}x raw" if raw_rate else ""
    print(
        f"  {run.label:<34} {run.events:>7} ev {run.seconds:7.2f} s {run.rate:8.0f} ev/s"
        f"  (from first ack {run.steady_rate:6.0f} ev/s, first ack at {run.first_s:4.2f} s)"
        f"  {ratio}"
    )
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in run.cpu.items())
    print(
        f"  {'':<34} CPU s: {cpu}; all processes kept {run.busy:.0%} of {os.cpu_count()} CPUs busy"
    )
    for problem in run.problems:
        print(f"  {'':<34} PROBLEM: {problem}")


def parse_sweep(text: str) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, text.split(",")):
        size, window = item.split(":")
        out.append((int(size), int(window)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="journal entries to drain")
    parser.add_argument("--pg", action="store_true", help="central on PostgreSQL (not SQLite)")
    parser.add_argument("--batch-size", type=int, help="gate [mqtt] batch_size (default 500)")
    parser.add_argument("--window", type=int, help="gate [mqtt] window (default 4)")
    parser.add_argument("--sweep", default="", help="more batch_size:window pairs, e.g. 500:4")
    parser.add_argument("--gates", type=int, default=4, help="gates in the replica comparison")
    parser.add_argument(
        "--replica-n", type=int, default=40_000, help="entries over all gates, replica comparison"
    )
    parser.add_argument("--keep", action="store_true", help="keep logs and databases")
    parser.add_argument("--no-replicas", action="store_true", help="skip 1 vs 2 replicas")
    args = parser.parse_args()
    mqtt: dict[str, object] = {}
    if args.batch_size:
        mqtt["batch_size"] = args.batch_size
    if args.window:
        mqtt["window"] = args.window
    print_machine(sys.argv, vars(args))

    root = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    broker = Mosquitto(root)
    broker.start()
    try:
        run_all(root, broker, args, mqtt)
    finally:
        print_load("at end")
        broker.stop()
        if args.keep:
            print(f"logs and databases kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run_all(
    root: Path, broker: Mosquitto, args: argparse.Namespace, mqtt: dict[str, object]
) -> None:
    n = args.n
    raw_s = raw_drain(broker, n)
    raw_rate = n / raw_s
    print(f"\nraw paho QoS 1, {n} x {len(sample_event().model_dump_json())} B messages:")
    print(f"  {'raw publisher -> subscriber':<34} {n:>7} msg {raw_s:6.2f} s {raw_rate:8.0f} msg/s")

    db = "PostgreSQL" if args.pg else "SQLite"
    print(f"\nours, one gate, central on {db}:")
    settings = ", ".join(f"{k}={v}" for k, v in mqtt.items()) or "defaults 500/4"
    with database(root / "main", args.pg) as url:
        run = drain(root / "main", broker, url, f"drain ({settings})", 1, n, mqtt=mqtt)
    print_run(run, raw_rate)
    verdict = "met" if run.rate / raw_rate >= GOAL else "NOT met"
    print(f"  ours/raw = {run.rate / raw_rate:.2f} (goal >= {GOAL}: {verdict})")

    for size, window in parse_sweep(args.sweep):
        label = f"drain (batch_size={size}, window={window})"
        work = root / f"sweep-{size}-{window}"
        with database(work, args.pg) as url:
            tuned = drain(
                work, broker, url, label, 1, n, mqtt={"batch_size": size, "window": window}
            )
        print_run(tuned, raw_rate)

    if not args.no_replicas:
        compare_replicas(root, broker, args.gates, args.replica_n, mqtt)


def compare_replicas(
    root: Path, broker: Mosquitto, gates: int, n: int, mqtt: dict[str, object]
) -> None:
    per_gate = n // gates
    cpus = os.cpu_count()
    print(f"\nPostgreSQL, {gates} gates x {per_gate} entries, central replicas ({cpus} CPUs here):")
    runs = []
    for replicas in (1, 2):
        with pg_schema() as url:
            work = root / f"replicas-{replicas}"
            label = f"{replicas} replica{'s' if replicas > 1 else ''}"
            runs.append(drain(work, broker, url, label, gates, per_gate, replicas, mqtt))
        print_run(runs[-1], None)
    print(f"  2 replicas / 1 replica = {runs[1].rate / runs[0].rate:.2f}")


if __name__ == "__main__":
    main()
