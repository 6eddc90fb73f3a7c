"""The SSE stream carries an event journalled by a real gate agent through a real broker, on
every central replica, and resumes after Last-Event-ID."""

from __future__ import annotations

import json
import queue
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from central import auth
from central.auth import Role
from central.store import presence
from central.store.db import make_engine, upgrade
from edge.config import load_gate_settings
from tests.integration.agent_helpers import make_keys
from tests.integration.services import Mosquitto
from tests.integration.stack import (
    Proc,
    central_config,
    central_proc,
    gate_config,
    gate_proc,
    wait_http,
    write_decisions,
)

PASSWORD = "stream-test-password"


def port_of(config: Path) -> int:
    return int(tomllib.loads(config.read_text())["http"]["port"])


def token(port: int) -> str:
    r = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/token",
                   data={"username": "guard", "password": PASSWORD})  # fmt: skip
    r.raise_for_status()
    return str(r.json()["access_token"])


def read_stream(port: int, tok: str, out: queue.Queue[tuple[str, Any]], stop: threading.Event,
                last_id: int | None = None) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {tok}"}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    with httpx.stream("GET", f"http://127.0.0.1:{port}/api/v1/events/stream",
                      headers=headers, timeout=None) as r:  # fmt: skip
        kind = "message"
        for line in r.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.put((kind, json.loads(line[6:])))


def collect(q: queue.Queue[tuple[str, Any]], want: int, timeout: float) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        try:
            kind, data = q.get(timeout=0.2)
        except queue.Empty:
            continue
        if kind == "event" and data.get("type") == "decision":
            got.append(data)
    return got


@pytest.fixture
def running(workdir: Path, live_broker: Mosquitto) -> Iterator[tuple[list[int], Path]]:
    db_url = f"sqlite:///{workdir / 'central.db'}"
    key = make_keys(workdir)
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        presence.register_gate(conn, "live", "east", datetime.now(UTC))
        auth.create_user(conn, "guard", PASSWORD, Role.GUARD, datetime.now(UTC))
    engine.dispose()
    configs = [central_config(workdir, db_url, live_broker.url) for _ in range(2)]
    centrals: list[Proc] = [central_proc(c).start() for c in configs]
    gcfg = gate_config(workdir, "live", "east", live_broker.url, key)
    agent = gate_proc(gcfg).start()
    ports = [port_of(c) for c in configs]
    try:
        for p in ports:
            wait_http(p)
        yield ports, load_gate_settings(gcfg).cache_path()
    finally:
        agent.stop()
        for c in centrals:
            c.stop()


def test_every_replica_streams_a_gate_event_and_resumes(
    running: tuple[list[int], Path],
) -> None:
    ports, cache_path = running
    stop = threading.Event()
    streams: list[queue.Queue[tuple[str, Any]]] = []
    for p in ports:
        q: queue.Queue[tuple[str, Any]] = queue.Queue()
        threading.Thread(target=read_stream, args=(p, token(p), q, stop), daemon=True).start()
        streams.append(q)
    time.sleep(1.0)
    count = 60  # enough for the replicas to commit and publish out of id order now and then
    for i in range(count):
        write_decisions(cache_path, 1, tag=f"live-{i}")
        time.sleep(0.05)
    first = [collect(q, count, 30) for q in streams]
    for got in first:  # both replicas, though only one of them stored each batch
        assert len(got) == count
        assert all(e["site"] == "live" and e["gate"] == "east" for e in got)
        assert len({e["event_id"] for e in got}) == count
    resume_from = min(e["event_id"] for e in first[0])
    q2: queue.Queue[tuple[str, Any]] = queue.Queue()
    threading.Thread(target=read_stream, args=(ports[1], token(ports[1]), q2, stop, resume_from),
                     daemon=True).start()  # fmt: skip
    replayed = collect(q2, count - 1, 15)
    expected = sorted(e["event_id"] for e in first[0] if e["event_id"] != resume_from)
    # Everything after the resume point comes back (plus, possibly, nothing else: the resume
    # point was the first event, so the overlap window adds no earlier ids here).
    assert sorted(e["event_id"] for e in replayed) == expected
    stop.set()
