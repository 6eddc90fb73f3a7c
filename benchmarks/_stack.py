"""Shared parts of the store-and-forward benchmarks: machine facts, journals, raw paho clients.

The real processes (Mosquitto, `menjin central serve`, `menjin gate run`) are started with the
integration-test helpers, so the benchmarks measure exactly what the chaos tests exercise.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
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
    """ERROR/CRITICAL lines and tracebacks a process wrote (its log level is WARNING)."""
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()
    marks = (" ERROR ", " CRITICAL ", "Traceback")
    return [line for line in lines if any(mark in line for mark in marks)]


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
    port: int, topic: str, on_payload: Callable[[bytes], None], client_id: str
) -> mqtt.Client:
    """A plain paho subscriber at QoS 1; returns once the broker has granted the subscription."""
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        on_payload(msg.payload)

    def on_subscribe(
        _c: mqtt.Client, _u: object, _mid: int, _codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        subscribed.set()

    client = raw_client(port, client_id)
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.subscribe(topic, qos=1)
    if not subscribed.wait(10):
        raise RuntimeError(f"no SUBACK for {topic}")
    return client


def close_client(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


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
