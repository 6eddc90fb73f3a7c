"""Live stream latency: gate journal -> MQTT -> central -> SSE, beside raw paho QoS 1.

Real processes on a private Mosquitto: central (`menjin central serve`, one replica on SQLite,
or two on one PostgreSQL schema) and an SSE client per replica on /api/v1/events/stream.
Decisions are journalled one at a time at a steady pace, two ways:

  (a) external writer: this process appends to the journal of a running `menjin gate run`.
      That agent's bridge sees another process's writes only when its sender wakes (every
      0.5 s, or sooner when an ack arrives), so this path carries a polling delay.
  (b) in-process agent: `GateAgent` + `MqttBridge` wired as `menjin gate run` wires them, fed
      signed passes through `agent.present()`, so each journal append wakes the bridge at once.
      This is the path a real gate takes, and the one the goal (p99 < 250 ms) is about.

Latency = SSE arrival - the moment the journal append returned, both `time.monotonic()`. A plain
paho subscriber on the broker stamps each hop on the way (events, ack, live republish), and
central's `received_at` marks when its ingest began storing, to show where the time goes.
Raw baseline, same broker and pacing: plain paho QoS 1, publish() -> subscriber's on_message.

With --fleet N (#15), instead: N simulated gates (menjin/sim_fleet.py: the real journal and
bridge, on shared loops) journal --rate entries/s each to one central, and --clients SSE clients
(in --reader-procs processes) time each entry from its `at` (the gate's wall clock, just before
the journal write) to its data line. Raw: plain paho QoS 1 at the same total rate.

Run: .venv/bin/python benchmarks/bench_stream.py [--n 300] [--interval-ms 50] [--replicas 2]
     [--pg] [--batch-wait-ms MS]
     .venv/bin/python benchmarks/bench_stream.py --fleet 2000 --rate 0.5 --clients 20 --pg
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from central import auth
from central.auth import Role
from central.config import load_central_settings
from central.store import presence
from central.store.db import make_engine, upgrade
from edge.assemble import assemble_gate
from edge.cache import GateCache
from edge.config import load_gate_settings
from edge.gate import DeviceFactories, GateAgent
from menjin.sim_fleet import Fleet, FleetSpec
from menjin.sim_provision import register_gates
from protocol import topics
from protocol.keyfiles import init_key_dir, load_signing_key
from protocol.messages import Ack, EventBatch, EventType, GateEvent, LiveBatch
from protocol.topics import GateTopic

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `tests` is not an installed package

from _stack import (  # noqa: E402
    close_client,
    cpu_seconds,
    database,
    percentile,
    print_load,
    print_machine,
)

from tests.integration.agent_helpers import issue  # noqa: E402
from tests.integration.services import Mosquitto  # noqa: E402
from tests.integration.stack import (  # noqa: E402
    Proc,
    central_config,
    central_proc,
    gate_config,
    gate_proc,
    wait_http,
)

SITE = "bench"
USER, PASSWORD = "guard", "bench-stream-password"
GOAL_P99_MS = 250.0
QS = (0.5, 0.95, 0.99)
WARMUP = 5  # first entries of each run, not counted: first-use costs on every hop
ARRIVAL_TIMEOUT_S = 15.0
WARMUP_S = 2.0  # --fleet: the first seconds of sending, not counted
RAW_TOPIC = "bench/raw/stream"
# The shipped defaults (the test helpers shorten these to make chaos tests quick).
GATE_MQTT_DEFAULTS: dict[str, object] = {"resend_after_s": 10.0, "status_interval_s": 30.0}
CENTRAL_INGEST_DEFAULTS: dict[str, object] = {"gap_replay_after_s": 3.0, "offline_grace_s": 120.0}
# Where one decision is seen, in path order; "sse1", "sse2"... follow.
HOPS = [
    ("sent", "journal append returned"),
    ("events", "events message on the broker"),
    ("ingest", "central ingest begins storing (received_at)"),
    ("ack", "ack on the broker (stored, committed)"),
    ("live", "live republish on the broker"),
]


class Marks:
    """When each decision reached each hop, by pass id, in `time.monotonic()` seconds."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.at: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self.started: set[str] = set()  # gates whose agent_start event was streamed

    def mark(self, hop: str, pass_id: str, at: float) -> None:
        with self._cond:
            self.at[hop].setdefault(pass_id, at)  # the first arrival: a resend is not news
            self._cond.notify_all()

    def gate_started(self, gate: str) -> None:
        with self._cond:
            self.started.add(gate)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def wait_streamed(self, pass_ids: list[str], replicas: int) -> None:
        hops = [f"sse{r + 1}" for r in range(replicas)]
        self.wait(lambda: all(p in self.at[h] for h in hops for p in pass_ids), ARRIVAL_TIMEOUT_S)


def wall_to_monotonic(wall: float) -> float:
    return time.monotonic() - (time.time() - wall)


# --- observers: an SSE client per replica, a sniffer on the broker -------------------------------


class StreamReader(threading.Thread):
    """An SSE client on one replica, stamping each data line as it arrives."""

    def __init__(self, port: int, replica: int, marks: Marks) -> None:
        super().__init__(name=f"sse{replica}", daemon=True)
        self.hop, self.marks = f"sse{replica}", marks
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=None)
        self.ready = threading.Event()
        self.closing = False

    def run(self) -> None:
        try:
            self._read()
        except (httpx.HTTPError, OSError, RuntimeError) as exc:
            if not self.closing:
                print(f"  {self.hop} failed: {exc!r}")

    def _read(self) -> None:
        r = self.client.post("/api/v1/auth/token", data={"username": USER, "password": PASSWORD})
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        with self.client.stream("GET", "/api/v1/events/stream", headers=headers) as response:
            response.raise_for_status()
            kind = "message"
            for line in response.iter_lines():
                at = time.monotonic()
                if line.startswith("retry:"):
                    self.ready.set()
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "event":
                    self._record(json.loads(line[6:]), at)

    def _record(self, data: dict[str, Any], at: float) -> None:
        if data["type"] == EventType.AGENT_START.value:
            self.marks.gate_started(str(data["gate"]))
        elif data["type"] == EventType.DECISION.value and data["pass_id"]:
            self.marks.mark(self.hop, data["pass_id"], at)
            received = datetime.fromisoformat(data["received_at"]).timestamp()
            self.marks.mark("ingest", data["pass_id"], wall_to_monotonic(received))

    def close(self) -> None:
        self.closing = True
        self.client.close()


class Sniffer:
    """A plain paho client that stamps each hop's message as the broker delivers it."""

    def __init__(self, port: int, marks: Marks) -> None:
        self.marks = marks
        self._unacked: defaultdict[str, dict[int, str]] = defaultdict(dict)  # gate -> seq: id
        self.client = connected_client(
            port,
            "bench-sniffer",
            [topics.all_gates(GateTopic.EVENTS), topics.all_gates(GateTopic.ACK),
             topics.central_live_topic()],
            self._on_message,
        )  # fmt: skip

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        at = time.monotonic()
        if msg.topic == topics.central_live_topic():
            for live in LiveBatch.model_validate_json(msg.payload).items:
                if live.kind == "event" and isinstance(live.data.get("pass_id"), str):
                    self.marks.mark("live", str(live.data["pass_id"]), at)
            return
        parsed = topics.parse_topic(msg.topic)
        pending = self._unacked[str(parsed.gate)]
        if parsed.kind == GateTopic.EVENTS:
            for event in EventBatch.model_validate_json(msg.payload).events:
                if event.pass_id:
                    self.marks.mark("events", event.pass_id, at)
                    pending[event.seq] = event.pass_id
        elif parsed.kind == GateTopic.ACK:
            ack = Ack.model_validate_json(msg.payload)
            for seq in [s for s in pending if s <= ack.seq]:
                self.marks.mark("ack", pending.pop(seq), at)

    def close(self) -> None:
        close_client(self.client)


def connected_client(
    port: int, client_id: str, subscriptions: list[str], on_message: mqtt.CallbackOnMessage
) -> mqtt.Client:
    """A plain paho client (API v2, library defaults); returns once its SUBACK is in."""
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_message = on_message
    if subscriptions:  # in on_connect, so a reconnect re-subscribes
        client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in subscriptions])
        client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if subscriptions and not subscribed.wait(10):
        raise RuntimeError(f"{client_id}: no SUBACK")
    return client


# --- pacing, passes, the raw baseline ----------------------------------------------------------


def paced(n: int, interval_s: float, step: Callable[[int], None]) -> None:
    """Call step(i) on a fixed schedule (no drift when a step is slow)."""
    start = time.monotonic()
    for i in range(n):
        delay = start + i * interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        step(i)


def one_event_message() -> int:
    """Size of the events message a gate sends for one decision (the raw payload's size)."""
    event = GateEvent(
        epoch=1_796_300_000, seq=1, at=datetime.now(UTC), type=EventType.DECISION,
        granted=True, reason="ok", pass_id="0123456789abcdef",
        details={"flags": [], "since_sync_s": 12.3, "key_id": "0a1b2c3d"},
    )  # fmt: skip
    batch = EventBatch(site=SITE, gate="east", epoch_first_seq={1_796_300_000: 1}, events=[event])
    return len(batch.model_dump_json())


def raw_latencies(port: int, n: int, interval_s: float) -> list[float]:
    """Plain paho QoS 1, publish() -> subscriber's on_message, in ms (warm-up excluded)."""
    marks = Marks()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        marks.mark("got", msg.payload[:16].decode(), time.monotonic())

    sub = connected_client(port, "bench-raw-sub", [RAW_TOPIC], on_message)
    pub = connected_client(port, "bench-raw-pub", [], on_message)
    padding = b" " * (one_event_message() - 16)

    def step(i: int) -> None:
        marks.mark("sent", f"{i:016x}", time.monotonic())
        pub.publish(RAW_TOPIC, f"{i:016x}".encode() + padding, qos=1)

    paced(n, interval_s, step)
    marks.wait(lambda: len(marks.at["got"]) >= n, ARRIVAL_TIMEOUT_S)
    for client in (pub, sub):
        close_client(client)
    sent, got = marks.at["sent"], marks.at["got"]
    return [(got[k] - sent[k]) * 1000 for k in list(sent)[WARMUP:] if k in got]


# --- the stack and the two ways of journalling -------------------------------------------------


@dataclass
class Bench:
    workdir: Path
    broker: Mosquitto
    key: SigningKey
    marks: Marks = field(default_factory=Marks)
    centrals: list[Proc] = field(default_factory=list)
    observers: list[StreamReader | Sniffer] = field(default_factory=list)

    def gate_config(self, gate: str) -> Path:
        return gate_config(self.workdir, SITE, gate, self.broker.url, self.key,
                           **GATE_MQTT_DEFAULTS)  # fmt: skip

    def wait_started(self, gate: str) -> None:
        """The agent's own agent_start event on the stream: the whole chain is up."""
        if not self.marks.wait(lambda: gate in self.marks.started, 30):
            raise RuntimeError(f"gate {gate}: no agent_start on the stream")


def start_stack(
    bench: Bench, db_url: str, replicas: int, ingest: dict[str, object], observe: bool = True
) -> list[int]:
    """Central replicas (and, to observe, an SSE reader on each and a broker sniffer)."""
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        for gate in ("ext", "inproc"):
            presence.register_gate(conn, SITE, gate, datetime.now(UTC))
        auth.create_user(conn, USER, PASSWORD, Role.GUARD, datetime.now(UTC))
    engine.dispose()
    configs = [central_config(bench.workdir, db_url, bench.broker.url, **ingest)
               for _ in range(replicas)]  # fmt: skip
    bench.centrals.extend(central_proc(cfg).start() for cfg in configs)
    ports = [load_central_settings(cfg).http.port for cfg in configs]
    for port in ports:
        wait_http(port, timeout=90)  # a loaded box (load 300 here) starts central slowly
    if observe:
        readers = [StreamReader(port, i, bench.marks) for i, port in enumerate(ports, start=1)]
        for reader in readers:
            reader.start()
        bench.observers.extend(readers)
        bench.observers.append(Sniffer(bench.broker.port, bench.marks))
        if not all(reader.ready.wait(20) for reader in readers):
            raise RuntimeError("a stream did not open")
    time.sleep(1.0)  # /healthz answers before ingest's SUBACK; let it land
    return ports


def stop_stack(bench: Bench) -> None:
    for observer in bench.observers:
        observer.close()
    for proc in bench.centrals:
        proc.stop()


def external_writer(bench: Bench, n: int, interval_s: float, replicas: int) -> list[str]:
    """(a) `menjin gate run` forwards; this process appends to its journal."""
    cfg = bench.gate_config("ext")
    agent = gate_proc(cfg).start()
    try:
        bench.wait_started("ext")
        cache = GateCache(load_gate_settings(cfg).cache_path())  # opened after boot: same epoch
        sent: list[str] = []

        def step(_i: int) -> None:
            pass_id = os.urandom(8).hex()
            cache.journal_append(
                EventType.DECISION, datetime.now(UTC), granted=True, reason="ok", pass_id=pass_id
            )
            bench.marks.mark("sent", pass_id, time.monotonic())
            sent.append(pass_id)

        paced(n, interval_s, step)
        bench.marks.wait_streamed(sent, replicas)
        cache.close()
    finally:
        agent.stop()
    return sent


@contextmanager
def in_process_agent(bench: Bench) -> Iterator[GateAgent]:
    """The gate as `menjin gate run` assembles it, with no devices."""
    gate = assemble_gate(load_gate_settings(bench.gate_config("inproc")), DeviceFactories())
    runner = threading.Thread(target=gate.run, name="gate", daemon=True)
    runner.start()
    try:
        yield gate.agent
    finally:
        gate.stop.set()
        runner.join(10)


def in_process(bench: Bench, n: int, interval_s: float, replicas: int) -> list[str]:
    """(b) the real agent: present() -> decide -> journal -> bridge woken in-process."""
    passes = [issue(bench.key, site=SITE) for _ in range(n)]
    sent: list[str] = []

    def step(i: int) -> None:
        decision, _ = agent.present(passes[i])
        # present() returns right after the journal commit (which woke the bridge).
        appended = time.monotonic()
        if not decision.granted or decision.pass_id is None:
            raise RuntimeError(f"pass {i} denied: {decision.reason}")
        bench.marks.mark("sent", decision.pass_id, appended)
        sent.append(decision.pass_id)

    with in_process_agent(bench) as agent:
        bench.wait_started("inproc")
        paced(n, interval_s, step)
        bench.marks.wait_streamed(sent, replicas)
    return sent


# --- report ------------------------------------------------------------------------------------


def spans(marks: Marks, ids: list[str], start: str, end: str) -> list[float]:
    a, b = marks.at[start], marks.at[end]
    return [(b[i] - a[i]) * 1000 for i in ids if i in a and i in b]


def latency_line(label: str, lat: list[float], sent: int, raw: list[float] | None) -> str:
    p = [percentile(lat, q) for q in QS]
    line = f"  {label:<44} {len(lat):>4}/{sent:<4}" + "".join(f" {v:8.2f}" for v in [*p, max(lat)])
    if raw:
        line += "   " + " / ".join(
            f"{v / percentile(raw, q):.0f}x" for v, q in zip(p, QS, strict=True)
        )
    return line


def report(marks: Marks, runs: dict[str, list[str]], raw: list[float], replicas: int) -> None:
    head = f"  {'latency, ms':<44} {'got':>9} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}"
    print(f"\n{head}   ours/raw at p50 / p95 / p99")
    print(latency_line("raw paho QoS 1, publish -> on_message", raw, len(raw), None))
    for label, sent in runs.items():
        ids = sent[WARMUP:]
        for r in range(1, replicas + 1):
            name = label + (f", SSE on replica {r}" if replicas > 1 else ", SSE")
            print(latency_line(name, spans(marks, ids, "sent", f"sse{r}"), len(ids), raw))
    for label, sent in runs.items():
        ids = sent[WARMUP:]
        print(f"\n  where the time goes, {label} (p50 / p99 ms, SSE on replica 1):")
        path = [*HOPS, ("sse1", "SSE data line read by the client")]
        for (a, _), (b, what) in itertools.pairwise(path):
            d = spans(marks, ids, a, b)
            print(f"    -> {what:<44} {percentile(d, 0.5):7.2f} / {percentile(d, 0.99):7.2f}")
        hops = [h for h, _ in HOPS[1:]] + [f"sse{r}" for r in range(1, replicas + 1)]
        reached = ", ".join(f"{h} {sum(i in marks.at[h] for i in ids)}" for h in hops)
        print(f"    reached ({len(ids)} journalled): {reached}")
    for label, sent in runs.items():
        if label.startswith("(b)"):
            ids = sent[WARMUP:]
            for r in range(1, replicas + 1):
                lat = spans(marks, ids, "sent", f"sse{r}")
                lost = len(ids) - len(lat)  # never streamed: worse than any latency
                ok = percentile(lat, 0.99) < GOAL_P99_MS and not lost
                print(f"\n  goal p99 < {GOAL_P99_MS:.0f} ms, (b) SSE on replica {r}: "
                      f"{percentile(lat, 0.99):.1f} ms, {lost} never streamed: "
                      f"{'met' if ok else 'NOT met'}")  # fmt: skip


def run(args: argparse.Namespace, workdir: Path, broker: Mosquitto, db_url: str) -> None:
    interval_s, replicas = args.interval_ms / 1000, args.replicas
    raw = raw_latencies(broker.port, args.n, interval_s)
    ingest = CENTRAL_INGEST_DEFAULTS.copy()
    if args.batch_wait_ms is not None:
        ingest["batch_wait_ms"] = args.batch_wait_ms
    init_key_dir(workdir / "keys")
    bench = Bench(workdir, broker, load_signing_key(workdir / "keys"))
    try:
        start_stack(bench, db_url, replicas, ingest)
        runs = {
            "(a) external journal writer": external_writer(bench, args.n, interval_s, replicas),
            "(b) in-process agent, present()": in_process(bench, args.n, interval_s, replicas),
        }
    finally:
        stop_stack(bench)
    db = "PostgreSQL" if "postgresql" in db_url else "SQLite"
    print(f"\ncentral: {replicas} replica(s) on {db}")
    report(bench.marks, runs, raw, replicas)
    for proc in bench.centrals:
        errors = [ln for ln in proc.tail().splitlines() if " ERROR " in ln or "Traceback" in ln]
        if errors:
            print(f"  PROBLEM in {proc.log.name}: {errors[0]}")


# --- (c) a simulated district: N fleet gates -> one central -> M SSE clients (#15) --------------


def _fleet_reader(
    port: int, token: str, site: str, since: Any, lat: list[float], ready: Any
) -> None:
    """One SSE client, for each `site` decision whose `at` is after `since`: two floats in
    `lat`, ms from `at` to its arrival, then ms from `at` to central's `received_at` (its
    ingest began storing it; same box, same wall clock), so the report can say where it went.
    """
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=None)
    headers = {"Authorization": f"Bearer {token}"}
    mine = f'"site": "{site}"'.encode()
    with client.stream("GET", "/api/v1/events/stream", headers=headers) as response:
        ready.release()
        tail = b""
        for chunk in response.iter_bytes():  # frames split by hand: cheap enough for 20 clients
            now = time.time()
            frames = (tail + chunk).split(b"\n\n")
            tail = frames.pop()
            for frame in frames:
                if frame.startswith(b"event: event") and mine in frame:
                    wall, received = _stamp(frame, b'"at": "'), _stamp(frame, b'"received_at": "')
                    if wall >= since.value:
                        lat += [(now - wall) * 1000, (received - wall) * 1000]


def _stamp(frame: bytes, key: bytes) -> float:
    at = frame.index(key) + len(key)
    return datetime.fromisoformat(frame[at : frame.index(b'"', at)].decode()).timestamp()


def _fleet_readers(
    port: int, token: str, clients: int, site: str, since: Any, out: Any, done: Any
) -> None:
    """A process of SSE clients (threads); puts each client's latencies on `out` when done."""
    ready = threading.Semaphore(0)
    lats: list[list[float]] = [[] for _ in range(clients)]
    for lat in lats:
        args = (port, token, site, since, lat, ready)
        threading.Thread(target=_fleet_reader, args=args, daemon=True).start()
    for _ in lats:
        ready.acquire()
    out.put("ready")
    done.wait()
    out.put(lats)


def run_fleet(args: argparse.Namespace, workdir: Path, broker: Mosquitto, db_url: str) -> None:
    total_rate = args.fleet * args.rate
    raw = raw_latencies(broker.port, min(3000, int(total_rate * 10)), 1 / total_rate)
    spec = FleetSpec(workdir=workdir / "fleet", urls=[broker.url], password_seed="bench",
                     gates=args.fleet, events=args.events, rate=args.rate, site="district",
                     processes=args.fleet_procs, resend_after_s=10.0)  # fmt: skip
    register_gates(spec, db_url)
    init_key_dir(workdir / "keys")
    bench = Bench(workdir, broker, load_signing_key(workdir / "keys"))
    ctx = mp.get_context("spawn")
    out, done = ctx.Queue(), ctx.Event()
    fleet = Fleet(spec)
    try:
        [port] = start_stack(bench, db_url, 1, CENTRAL_INGEST_DEFAULTS, observe=False)
        fleet.start(send=False)
        fleet.wait("connected", args.timeout)
        since = ctx.RawValue("d", 1e12)  # the wall clock time from which entries count
        # One login for all: central rate-limits logins (20 at once got 429s).
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/token",
                       data={"username": USER, "password": PASSWORD})  # fmt: skip
        r.raise_for_status()
        token = str(r.json()["access_token"])
        per = -(-args.clients // args.reader_procs)
        counts = [min(per, args.clients - k * per) for k in range(args.reader_procs)]
        readers = [
            ctx.Process(target=_fleet_readers, args=(port, token, c, spec.site, since, out, done))
            for c in counts
            if c > 0
        ]
        for p in readers:
            p.start()
        for _ in readers:
            assert out.get(timeout=60) == "ready"
        t0, cpu0, box0 = time.monotonic(), central_cpu(bench), box_busy()
        workers = list(fleet.view.processes)
        fleet_cpu0 = sum(cpu_seconds(pid) for pid in workers)
        since.value = time.time() + WARMUP_S
        fleet.send(spec.events)
        try:
            totals = fleet.wait("drained", args.timeout)
        except TimeoutError:
            totals = fleet.poll(1.0) | {"not_drained": True}  # report what did arrive
        took, cpu = time.monotonic() - t0, central_cpu(bench) - cpu0
        totals["fleet_cpu"] = sum(cpu_seconds(pid) for pid in workers) - fleet_cpu0
        totals["box_busy"] = box_busy() - box0
        time.sleep(3.0)  # the last entries' SSE lines
        done.set()
        lats = [lat for _ in readers for lat in out.get(timeout=60)]
        for p in readers:
            p.join(10)
    finally:
        fleet.stop()
        stop_stack(bench)
    fleet_report(args, totals, took, cpu, lats, raw)


def box_busy() -> float:
    """CPU seconds the whole box has been busy (every process, not idle or iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def central_cpu(bench: Bench) -> float:
    proc = bench.centrals[0].proc
    return cpu_seconds(proc.pid) if proc is not None else 0.0


def fleet_report(
    args: argparse.Namespace,
    totals: dict[str, Any],
    took: float,
    cpu: float,
    lats: list[list[float]],
    raw: list[float],
) -> None:
    n, acked = totals["journalled"], totals["journalled"] - totals["backlog"]
    done = "NOT all acked" if totals.get("not_drained") else "all acked"
    print(f"\n{args.fleet} sim gates x {args.rate} entries/s ({args.events} each) in "
          f"{totals['processes']} processes (<= {totals['threads_max']} threads each): {n} "
          f"journalled, {done} in {took:.1f} s ({acked} acked, {acked / took:.0f} ev/s); "
          f"central CPU {cpu / took:.0%} of a core, {cpu / max(acked, 1) * 1e6:.0f} µs/acked"
          " event")  # fmt: skip
    ncpu = os.cpu_count() or 1
    print(f"  the fleet's CPU {totals['fleet_cpu'] / took:.0%} of a core; the whole box busy "
          f"{totals['box_busy'] / took / ncpu:.0%} of its {ncpu} cores; gates' ack latency "
          f"p50 {totals['ack_p50_s']} s, p99 {totals['ack_p99_s']} s")  # fmt: skip
    every = [v for lat in lats for v in lat[0::2]]
    to_central = [v for lat in lats for v in lat[1::2]]
    after = [a - b for lat in lats for a, b in zip(lat[0::2], lat[1::2], strict=True)]
    lats = [lat[0::2] for lat in lats]
    counted = sorted(len(lat) for lat in lats)
    print(f"  {len(lats)} SSE clients: {counted[0]}-{counted[-1]} entries each timed "
          f"(those journalled after the first {WARMUP_S:.0f} s)")  # fmt: skip
    print(latency_line("raw paho QoS 1, publish -> on_message", raw, len(raw), None))
    print(latency_line("journal -> SSE, all clients", every, len(every), raw))
    print(latency_line("  of it: at -> central's received_at", to_central, len(to_central), None))
    print(latency_line("  of it: received_at -> SSE", after, len(after), None))
    worst = max(percentile(lat, 0.99) for lat in lats)
    p99 = percentile(every, 0.99)
    print(f"  worst client's p99 {worst:.1f} ms; goal p99 < {GOAL_P99_MS:.0f} ms: "
          f"{'met' if p99 < GOAL_P99_MS else 'NOT met'} ({p99:.1f} ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="decisions per run")
    parser.add_argument("--interval-ms", type=float, default=50.0, help="pace between decisions")
    parser.add_argument("--replicas", type=int, default=1, help="central replicas (2+: on PG)")
    parser.add_argument("--pg", action="store_true", help="central on PostgreSQL with 1 replica")
    parser.add_argument("--batch-wait-ms", type=int, help="central [ingest] batch_wait_ms")
    parser.add_argument("--fleet", type=int, default=0, help="simulated gates instead (#15)")
    parser.add_argument("--rate", type=float, default=0.5, help="--fleet: entries/s per gate")
    parser.add_argument("--events", type=int, default=60, help="--fleet: entries per gate")
    parser.add_argument("--fleet-procs", type=int, default=2, help="--fleet: worker processes")
    parser.add_argument("--clients", type=int, default=20, help="--fleet: SSE clients")
    parser.add_argument("--reader-procs", type=int, default=2, help="--fleet: their processes")
    parser.add_argument("--timeout", type=float, default=600, help="--fleet: give up after (s)")
    args = parser.parse_args()
    if args.n <= WARMUP:
        parser.error(f"--n must exceed the {WARMUP} warm-up entries")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print_machine(sys.argv, vars(args))
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir)  # with set_tcp_nodelay, as config/mosquitto.conf ships
        broker.start()
        try:
            with database(workdir, args.pg or args.replicas > 1) as db_url:
                (run_fleet if args.fleet else run)(args, workdir, broker, db_url)
        finally:
            print_load("at end")
            broker.stop()


if __name__ == "__main__":
    main()
