"""What the real stream sends validates against protocol/live.py: event, status and alert
(opened by ingest, acknowledged through the API)."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import httpx

from protocol.live import LIVE_KINDS, AlertKind, AlertState, LiveAlert
from tests.integration.console.stack import ConsoleStack


def read(url: str, token: str, out: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", url, headers=headers, timeout=None) as r:
        kind = "message"
        for line in r.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.put((kind, json.loads(line[6:])))


def test_stream_payloads_match_the_typed_contract(stack: ConsoleStack) -> None:
    token = stack.token("guard")
    got: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    url = f"{stack.url}/api/v1/events/stream"
    threading.Thread(target=read, args=(url, token, got, stop), daemon=True).start()
    time.sleep(0.5)
    stack.fever()
    seen: dict[str, list[Any]] = {"event": [], "status": [], "alert": []}
    deadline = time.monotonic() + 15
    acked = False
    while time.monotonic() < deadline and not (acked and seen["status"]):
        try:
            kind, data = got.get(timeout=0.2)
        except queue.Empty:
            continue
        seen[kind].append(LIVE_KINDS[kind].model_validate(data))  # type: ignore[index]
        alert = seen[kind][-1]
        if isinstance(alert, LiveAlert) and alert.state is AlertState.OPEN:
            httpx.post(f"{stack.url}/api/v1/alerts/{alert.id}/ack", json={"note": "ok"},
                       headers={"Authorization": f"Bearer {token}"}).raise_for_status()  # fmt: skip
        if isinstance(alert, LiveAlert) and alert.state is AlertState.ACKED:
            acked = True
            stack.agent.stop()  # type: ignore[union-attr]  # and a status change
    stop.set()
    stack.start_agent()
    assert any(e.reason == "fever" for e in seen["event"])
    assert [a.state for a in seen["alert"]] == [AlertState.OPEN, AlertState.ACKED]
    assert all(a.kind is AlertKind.FEVER for a in seen["alert"])
    assert seen["status"] and seen["status"][0].state == "offline"
