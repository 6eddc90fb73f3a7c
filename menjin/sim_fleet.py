"""A fleet of simulated gates made of the real gate code: GateCache journals, MqttBridge links.

Each gate has its own SQLite journal, its own broker user and its own bridge, so central sees
nothing it could tell from real gates. Gates run in a few worker processes; in each, one thread
(menjin/sim_loop.py) serves every bridge's paho client and sender step, unless the spec asks for
the agent's own two threads per bridge. The parent only aggregates what the workers report.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing as mp
import os
import queue
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from edge.cache import GateCache
from edge.decide import GateContext
from edge.mqtt_bridge import MqttBridge
from edge.mqtt_settings import MqttSection
from menjin.sim_loop import SharedLoop
from protocol.messages import DetailValue, EventType

REPORT_EVERY_S = 1.0
CLOSERS = 32  # threads that close a worker's gates at the end
# paho's own network loop uses select(), which cannot watch a descriptor >= 1024, and a gate
# holds about six (SQLite file, -wal, -shm, the socket, paho's wake-up pair). Past ~150 gates in
# one process the later gates' sockets were silently never served (352 of 1,000 connected in 4
# processes), so a process of threaded bridges gets at most this many.
MAX_THREADED_PER_PROCESS = 120
# On the shared loop (epoll) a gate holds four descriptors and no thread; what bounds a
# process is its one core (docs/performance.md, "District (#15)").
MAX_GATES_PER_PROCESS = 1000
GATE_PREFIX = "gate/"  # central.broker_users.gate_username; not imported: edge code only here


@dataclass(frozen=True)
class FleetSpec:
    """What to simulate; every gate gets `events` journal entries at `rate` per second."""

    workdir: Path
    urls: list[str]
    password_seed: str  # the secret every gate's broker password is derived from
    gates: int = 10
    events: int = 10
    rate: float = 1.0
    site: str = "sim"
    processes: int = 2
    resend_after_s: float = 5.0
    failover_jitter_s: float = 2.0
    qos: int = 1  # the gates' [mqtt] qos: 0 on NATS (docs/operations.md)
    shared_loop: bool = True  # False: the agent's two threads per bridge (paho's loop_start)
    # The shipped default: at 10 s, 2,000 gates sent central 200 statuses/s, each its own
    # PostgreSQL round trip in the store loop, 3x what the same real gates would.
    status_interval_s: float = 30.0

    def per_process(self) -> int:
        return MAX_GATES_PER_PROCESS if self.shared_loop else MAX_THREADED_PER_PROCESS

    def gate_ids(self) -> list[str]:
        return [f"g{i:05d}" for i in range(self.gates)]

    def username(self, gate: str) -> str:
        return f"{GATE_PREFIX}{self.site}/{gate}"

    def password(self, gate: str) -> str:
        """Derived, so a provisioning step and the fleet agree without a file of secrets."""
        key = self.password_seed.encode()
        return hmac.new(key, f"{self.site}/{gate}".encode(), hashlib.sha256).hexdigest()[:24]

    def urls_for(self, index: int) -> list[str]:
        """Gate i prefers node i mod n: a third of a 3-node fleet on each node."""
        shift = index % len(self.urls)
        return self.urls[shift:] + self.urls[:shift]

    def cache_path(self, gate: str) -> Path:
        return self.workdir / f"{self.site}-{gate}.db"


class TimedCache(GateCache):
    """The real journal, noting when each entry was written and when central acked it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.written_at: dict[tuple[int, int], float] = {}
        self.latencies: list[float] = []

    def append_decision(self, tag: str) -> int:
        details: dict[str, DetailValue] = {"sim": tag}
        seq = self.journal_append(
            EventType.DECISION, datetime.now(UTC), granted=True, reason="ok", details=details
        )
        self.written_at[(self.epoch, seq)] = time.monotonic()
        return seq

    def ack_through(self, seq: int, epoch: int | None = None) -> int:
        count = super().ack_through(seq, epoch)
        now = time.monotonic()
        for key in [k for k in self.written_at if k[1] <= seq and epoch in (None, k[0])]:
            self.latencies.append(now - self.written_at.pop(key))
        return count


class SimSide:
    """The gate side of a simulated gate's bridge: its Journal and GateControl, no agent."""

    def __init__(self, cache: GateCache, ctx: GateContext) -> None:
        self.cache, self.ctx = cache, ctx

    def append(self, event_type: EventType, **fields: Any) -> int:
        return self.cache.journal_append(event_type, datetime.now(UTC), **fields)

    def remote_open(self) -> bool:
        return True

    def offer_policy(self, raw: bytes) -> bool:
        return False  # a simulated gate keeps the policy it was made with

    def live_policy(self) -> GateContext:
        return self.ctx

    def counters(self) -> dict[str, int | bool]:
        return {}


@dataclass
class SimGate:
    gate: str
    cache: TimedCache
    bridge: MqttBridge
    written: int = 0

    def report(self) -> dict[str, Any]:
        counters = self.bridge.own_counters()
        return {
            "gate": self.gate,
            "journalled": self.written,
            "backlog": self.cache.backlog(),
            "connected": self.bridge.connected,
            "connects": counters["mqtt_connects"],
            "failovers": counters["mqtt_failovers"],
            "suback_refused": counters["mqtt_suback_refused"],
            "subscriptions_ok": counters["subscriptions_ok"],
        }


def _open_gate(spec: FleetSpec, index: int, gate: str, loop: SharedLoop | None) -> SimGate:
    cache = TimedCache(spec.cache_path(gate))
    cfg = MqttSection(
        urls=spec.urls_for(index),
        username=spec.username(gate),
        password=spec.password(gate),
        resend_after_s=spec.resend_after_s,
        failover_jitter_s=spec.failover_jitter_s,
        status_interval_s=spec.status_interval_s,
        qos=spec.qos,
    )

    side = SimSide(cache, GateContext(site=spec.site, gate=gate, trusted={}))
    bridge = MqttBridge(cfg, cache, side, side, loop=loop)
    return SimGate(gate, cache, bridge)


def _worker(spec: FleetSpec, indices: list[int], out: Any, stop: MpEvent, target: Any) -> None:
    """One process: open its gates, write their journals at the rate, report until told.

    `target` (shared with the parent) is how many entries each gate should have journalled;
    the parent raises it to start another round of sending.
    """
    ids = spec.gate_ids()
    # Every write and ack wakes its sender; the poll only backs up subscription retries.
    loop = SharedLoop(poll_s=5.0) if spec.shared_loop else None
    if loop is not None:
        loop.start()
    gates = [_open_gate(spec, i, ids[i], loop) for i in indices]
    for g in gates:
        g.bridge.start()
    budget, last = 0.0, time.monotonic()
    next_report = 0.0
    try:
        while not stop.is_set():
            now = time.monotonic()
            # A token bucket per process: `rate` entries per gate per second, up to the target.
            budget = min(float(target.value), budget + spec.rate * (now - last))
            last = now
            _write_due(gates, budget, int(target.value))
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + REPORT_EVERY_S
                _report(gates, out)
            stop.wait(0.05)
        _report(gates, out)
    finally:
        # Each close waits (up to 2 s) for the broker to take the gate's offline status: one at
        # a time, a congested broker would hold a process of 1,000 gates for many minutes.
        with ThreadPoolExecutor(CLOSERS, thread_name_prefix="close") as pool:
            list(pool.map(_close_gate, gates))
        if loop is not None:
            loop.close()


def _close_gate(g: SimGate) -> None:
    g.bridge.close()
    g.cache.close()


def _write_due(gates: list[SimGate], budget: float, target: int) -> None:
    """Gate k of n is owed its next entry 1 - k/n of an entry early: the process's writes are
    spread over each 1/rate seconds instead of coming as one burst (and the first is at once)."""
    n = len(gates)
    for k, g in enumerate(gates):
        owed = min(target, int(budget + 1.0 - k / n))
        while g.written < owed:
            g.cache.append_decision(f"{g.gate}-{g.written}")
            g.written += 1
            g.bridge.notify()


def _report(gates: list[SimGate], out: Any) -> None:
    latencies: list[float] = []
    for g in gates:
        latencies += g.cache.latencies
        g.cache.latencies = []
    out.put({"gates": [g.report() for g in gates], "latencies": latencies,
             "process": process_stats(os.getpid())})  # fmt: skip


def process_stats(pid: int) -> dict[str, int]:
    """Threads (every one, paho's and SQLite's too) and memory of a process, from /proc."""
    fields = {"Threads": "threads", "VmRSS": "rss_kib", "VmHWM": "hwm_kib"}
    stats = {"pid": pid}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            stats[fields[key]] = int(value.split()[0])
    return stats


@dataclass
class FleetView:
    """What the parent knows: each gate's last report, and every ack latency so far."""

    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    processes: dict[int, dict[str, int]] = field(default_factory=dict)  # pid -> process_stats

    def totals(self) -> dict[str, Any]:
        rows = list(self.gates.values())
        lat = sorted(self.latencies)
        return {
            "at": round(time.time(), 3),
            "gates": len(rows),
            "connected": sum(bool(r["connected"]) for r in rows),
            "journalled": sum(int(r["journalled"]) for r in rows),
            "backlog": sum(int(r["backlog"]) for r in rows),
            "acked": len(lat),
            "ack_p50_s": round(lat[len(lat) // 2], 3) if lat else None,
            "ack_p99_s": round(lat[int(len(lat) * 0.99)], 3) if lat else None,
            "ack_mean_s": round(statistics.fmean(lat), 3) if lat else None,
            "connects": sum(int(r["connects"]) for r in rows),
            "failovers": sum(int(r["failovers"]) for r in rows),
            "suback_refused": sum(int(r["suback_refused"]) for r in rows),
            "subscriptions_not_ok": sum(not r["subscriptions_ok"] for r in rows),
            "processes": len(self.processes),
            "threads_max": max((p["threads"] for p in self.processes.values()), default=0),
            "rss_mib_max": max((p["hwm_kib"] for p in self.processes.values()), default=0) // 1024,
        }


class Fleet:
    """Start the workers, watch their reports, stop them; usable from tests and the CLI."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.view = FleetView()
        ctx = mp.get_context("spawn")  # no inherited paho threads or SQLite handles
        self._out = ctx.Queue()
        self._stop = ctx.Event()
        self._target = ctx.Value("i", 0)
        procs = max(spec.processes, -(-spec.gates // spec.per_process()))
        slices = [list(range(spec.gates))[k::procs] for k in range(procs)]
        self._procs = [
            ctx.Process(target=_worker, args=(spec, s, self._out, self._stop, self._target))
            for s in slices
            if s
        ]

    def start(self, send: bool = True) -> None:
        self.spec.workdir.mkdir(parents=True, exist_ok=True)
        for p in self._procs:
            p.start()
        if send:
            self.send(self.spec.events)

    @property
    def target(self) -> int:
        return int(self._target.value)

    def send(self, events: int) -> None:
        """Have every gate journal this many more entries, at the fleet's rate."""
        with self._target.get_lock():
            self._target.value += events

    def poll(self, wait_s: float = 0.2) -> dict[str, Any]:
        """Take in the workers' reports; returns the current totals."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                msg = self._out.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            for row in msg["gates"]:
                self.view.gates[row["gate"]] = row
            self.view.latencies += msg["latencies"]
            self.view.processes[msg["process"]["pid"]] = msg["process"]
        return self.view.totals()

    def wait(self, done: str, timeout: float) -> dict[str, Any]:
        """Poll until a condition on the totals holds: 'connected', 'journalled' or 'drained'."""
        deadline = time.monotonic() + timeout
        while True:
            totals = self.poll(0.5)
            if self.holds(done, totals):
                return totals
            if time.monotonic() > deadline:
                raise TimeoutError(f"fleet not {done} after {timeout} s: {totals}")

    def holds(self, done: str, t: dict[str, Any]) -> bool:
        n = self.spec.gates
        all_in = bool(t["gates"] == n and t["connected"] == n)
        if done == "connected":
            return all_in
        written = t["journalled"] == n * self.target
        return bool(all_in and written and (done == "journalled" or t["backlog"] == 0))

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        started = [p for p in self._procs if p.pid is not None]
        for p in started:
            p.join(30)
        totals = self.poll(0.5)
        for p in started:
            if p.is_alive():
                p.kill()
        return totals

    def gate_rows(self) -> Iterator[dict[str, Any]]:
        yield from self.view.gates.values()


def dump(totals: dict[str, Any]) -> str:
    return json.dumps(totals, sort_keys=True)


def spec_dict(spec: FleetSpec) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(spec).items()}
