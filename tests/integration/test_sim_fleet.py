"""`menjin sim fleet` end to end: simulated gates, a real broker, central's ingest, JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from menjin.cli import build_app
from tests.integration.ingest_helpers import running_central
from tests.integration.services import Mosquitto


def test_sim_fleet_drains_and_reports_every_gate(workdir: Path, live_broker: Mosquitto) -> None:
    gates = ("g00000", "g00001", "g00002")
    per_gate = workdir / "per-gate.jsonl"
    with running_central(workdir, {"url": live_broker.url}, gates=gates, site="simtest"):
        result = CliRunner().invoke(build_app("sim"), [
            "sim", "fleet", "--broker", live_broker.url, "--gates", "3", "--events", "4",
            "--rate", "20", "--processes", "2", "--site", "simtest", "--password-seed", "t",
            "--workdir", str(workdir / "fleet"), "--timeout", "60", "--per-gate", str(per_gate),
        ])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["summary"] and summary["drained"]
    assert summary["journalled"] == 12 and summary["backlog"] == 0 and summary["acked"] == 12
    assert summary["ack_p99_s"] is not None and summary["subscriptions_not_ok"] == 0
    rows = [json.loads(line) for line in per_gate.read_text().splitlines()]
    assert sorted(r["gate"] for r in rows) == list(gates)
    assert all(r["journalled"] == 4 and r["backlog"] == 0 for r in rows)


def test_sim_fleet_fails_when_nothing_acks(workdir: Path, live_broker: Mosquitto) -> None:
    result = CliRunner().invoke(build_app("sim"), [
        "sim", "fleet", "--broker", live_broker.url, "--gates", "2", "--events", "1",
        "--password-seed", "t", "--workdir", str(workdir / "fleet"), "--timeout", "4",
    ])  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.output.strip().splitlines()[-1])["drained"] is False
