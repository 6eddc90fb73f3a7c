"""Shared parts of the store-and-forward benchmarks: machine facts, journals, raw paho clients.

The real processes (Mosquitto, `menjin central serve`, `menjin gate run`) are started with the
integration-test helpers, so the benchmarks measure exactly what the chaos tests exercise.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import re
import shlex
import sqlite3
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from protocol.messages import EventType, GateEvent

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `tests` is not an installed package

from tests.integration.agent_helpers import make_keys  # noqa: E402
from tests.integration.services import Mosquitto, pg_schema  # noqa: E402
from tests.integration.stack import (  # noqa: E402
    Proc,
    central_config,
    central_proc,
    duplicates,
    gate_config,
    gate_proc,
    wait_http,
)

__all__ = [
    "Mosquitto",
    "Proc",
    "central_config",
    "central_proc",
    "duplicates",
    "gate_config",
    "gate_proc",
    "make_keys",
    "pg_schema",
    "wait_http",
]

CST = timezone(timedelta(hours=8))
RAW_TOPIC = "bench/raw/drain"
RAW_MAX_PENDING = 1000
RAW_TIMEOUT_S = 900.0
# The shipped defaults (the test helpers shorten these to make chaos tests quick).
GATE_MQTT_DEFAULTS: dict[str, object] = {"resend_after_s": 10.0, "status_interval_s": 30.0}
CENTRAL_INGEST_DEFAULTS: dict[str, object] = {"gap_replay_after_s": 3.0, "offline_grace_s": 120.0}


# --- reporting ---------------------------------------------------------------------------------


def print_machine(argv: list[str], params: dict[str, object]) -> None:
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {cpu_model()}")
    print(f"python:  {platform.python_version()} ({sys.executable})")
    print(f"command: {shlex.join([Path(sys.executable).name, *argv])}")
    print("params:  " + ", ".join(f"{k}={v}" for k, v in params.items()))
    print_load("at start")


def print_load(when: str) -> None:
    """Other work on the machine skews every figure; say how busy it was."""
    one, five, _ = os.getloadavg()
    print(f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min)")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all CPUs, for the share of the machine a run kept busy."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def log_problems(log: Path) -> list[str]:
    """ERROR/CRITICAL lines a process wrote (its log level is WARNING), then its exceptions."""
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()
    errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line]
    # A traceback ends in an unindented "package.ExceptionType: message" line.
    kinds = Counter(m.group(1) for line in lines if (m := _EXCEPTION_LINE.match(line)))
    return errors + [f"{kind} x{count}" for kind, count in kinds.most_common()]


_EXCEPTION_LINE = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Detected)):")


# --- the gate journal --------------------------------------------------------------------------


def sample_event(seq: int = 1, epoch: int = 1_796_300_000) -> GateEvent:
    """One granted decision as the agent journals it, with the clock facts every entry carries."""
    return GateEvent(
        epoch=epoch,
        seq=seq,
        at=datetime(2026, 12, 2, 9, 0, tzinfo=CST),
        type=EventType.DECISION,
        granted=True,
        reason="ok",
        pass_id="0123456789abcdef",
        temperature_c=36.5,
        details={"flags": [], "clock_skew_s": 0.4, "since_sync_s": 12.3, "direction": "in"},
    )


def fill_journal(cache_path: Path, count: int) -> int:
    """Journal `count` decisions in one transaction (what weeks offline leave); returns the epoch.

    One transaction instead of `journal_append` per entry: 100k fsyncs would take minutes and
    the drain, not the fill, is what is measured.
    """
    from edge.cache import GateCache

    cache = GateCache(cache_path)
    try:
        epoch = cache.begin_boot()
        start = datetime.now(CST) - timedelta(days=7)
        details = json.dumps(sample_event().details, separators=(",", ":"))
        rows = (
            (epoch, at.timestamp(), at.isoformat(), "decision", 1, "ok", f"{i:016x}", 36.5, details)
            for i, at in ((i, start + timedelta(seconds=5 * i)) for i in range(count))
        )
        conn = cache.db.conn
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO journal (epoch, ts, at, type, granted, reason, pass_id, temperature_c,"
            " details) VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.execute("COMMIT")
    finally:
        cache.close()
    return epoch


@contextmanager
def database(workdir: Path, pg: bool) -> Iterator[str]:
    """Central's database URL: a SQLite file in workdir, or a fresh PostgreSQL schema."""
    if pg:
        with pg_schema() as url:
            yield url
    else:
        yield f"sqlite:///{workdir / 'central.db'}"


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a gate's SQLite file; each query sees the latest commit."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10)


def journal_counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(entries, unacked) in a gate journal."""
    total = conn.execute("SELECT count(*) FROM journal").fetchone()[0]
    unacked = conn.execute("SELECT count(*) FROM journal WHERE acked = 0").fetchone()[0]
    return int(total), int(unacked)


# --- raw paho clients --------------------------------------------------------------------------


def raw_client(port: int, client_id: str) -> mqtt.Client:
    """A plain paho client (API v2, MQTT 3.1.1, library defaults), connected and looping."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    return client


def raw_subscriber(
    port: int, topic: str, on_message: Callable[[str, bytes], None], client_id: str
) -> mqtt.Client:
    """A plain paho subscriber at QoS 1; returns once the broker has granted the subscription."""
    subscribed = threading.Event()

    def deliver(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        on_message(msg.topic, bytes(msg.payload))

    def on_subscribe(
        _c: mqtt.Client, _u: object, _mid: int, _codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        subscribed.set()

    client = raw_client(port, client_id)
    client.on_message = deliver
    client.on_subscribe = on_subscribe
    client.subscribe(topic, qos=1)
    if not subscribed.wait(10):
        raise RuntimeError(f"no SUBACK for {topic}")
    return client


def close_client(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


# --- raw drain baseline -------------------------------------------------------------------


def _publish_all(port: int, payload: bytes, count: int, ready: MpEvent, go: MpEvent) -> None:
    """The raw publisher, in its own process as the gate agent is."""
    client = raw_client(port, "bench-raw-pub")
    ready.set()
    go.wait()
    pending: deque[mqtt.MQTTMessageInfo] = deque()
    for _ in range(count):
        # Message ids are 16 bits: with more than 65,535 queued, paho refuses a publish whose
        # id is still in use (ERR_QUEUE_SIZE), so even the raw client needs some flow control.
        if len(pending) >= RAW_MAX_PENDING:
            pending.popleft().wait_for_publish(timeout=RAW_TIMEOUT_S)
        pending.append(client.publish(RAW_TOPIC, payload, qos=1))
    for info in pending:
        info.wait_for_publish(timeout=RAW_TIMEOUT_S)
    close_client(client)


def raw_drain(broker: Mosquitto, count: int) -> float:
    """Seconds for a plain paho publisher to get `count` QoS 1 messages to a plain subscriber."""
    payload = sample_event().model_dump_json().encode()
    received = [0]
    finished = threading.Event()

    def count_one(_topic: str, _payload: bytes) -> None:
        received[0] += 1
        if received[0] >= count:
            finished.set()

    sub = raw_subscriber(broker.port, RAW_TOPIC, count_one, "bench-raw-sub")
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    pub = ctx.Process(target=_publish_all, args=(broker.port, payload, count, ready, go))
    pub.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("raw publisher did not connect")
        t0 = time.monotonic()
        go.set()
        if not finished.wait(RAW_TIMEOUT_S):
            raise TimeoutError(f"raw subscriber got {received[0]} of {count}")
        return time.monotonic() - t0
    finally:
        pub.join(30)
        close_client(sub)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, every: float) -> float:
    """Poll until predicate holds; returns the monotonic time it was first seen true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def utc_now() -> datetime:
    return datetime.now(UTC)
