"""Lockdown and policy propagation: API call -> signed document applied at every online gate.

A real central (create_app with its MQTT ingest, in-process, SQLite) and N real gates, each put
together by `edge.assemble.assemble_gate` with its MqttBridge connected to a private Mosquitto
(no devices: the agent's reader loop is not needed to apply a policy); the gates run in one
process of their own, central and the API caller in another. For each sample the benchmark
calls the API (`POST /api/v1/lockdowns`, `DELETE /api/v1/lockdowns/{id}` or
`PUT /api/v1/sites/{site}/policy`) while a watcher in the gates' process polls every gate's
live policy every 0.5 ms; a gate's latency is from just before the API call to the moment its
policy holder shows the new version (both on CLOCK_MONOTONIC). p50/p99 are over every
(gate, sample) pair. Beside it, in the same run, the raw broker round trip: a plain paho
publish -> subscriber receive (QoS 1) on the same broker.

Run: .venv/bin/python benchmarks/bench_policy.py [--gates 1,10,100] [--rounds 10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

from _stack import (
    Mosquitto,
    close_client,
    percentile,
    print_load,
    print_machine,
    raw_client,
    raw_subscriber,
)
from fastapi.testclient import TestClient

from central.app import create_app
from central.auth import Role
from edge.assemble import Gate, assemble_gate
from edge.config import load_gate_settings
from edge.gate import DeviceFactories
from protocol.settings_file import render_toml
from tests.integration.api_helpers import central_settings, make_users

POLL_S = 0.0005


def measure_raw(port: int, n: int) -> list[float]:
    """Plain paho publish -> subscriber receive on the same broker, ms."""
    arrived = threading.Event()
    sub = raw_subscriber(port, "bench/raw/policy", lambda _t, _p: arrived.set(), "bench-raw-sub")
    pub = raw_client(port, "bench-raw-pub")
    samples = []
    try:
        for _ in range(n):
            arrived.clear()
            started = time.perf_counter()
            pub.publish("bench/raw/policy", b'{"v": 1, "document": "..."}', qos=1)
            if not arrived.wait(5):
                raise RuntimeError("raw message lost")
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        close_client(pub)
        close_client(sub)
    return samples


def provision(api: Api, workdir: Path, gate: str) -> Path:
    out = api.call("POST", "/api/v1/gates", json={"site": api.site, "gate": gate})
    config = tomllib.loads(str(out["config_toml"]))
    keys = config.pop("keys")
    path = workdir / f"{gate}.toml"
    path.write_text(render_toml(config, {f"keys.{k}": v for k, v in keys.items()}), "utf-8")
    return path


def host_gates(paths: list[Path], pipe: Connection) -> None:
    """The gates' process: assemble and connect them, then time each change as it lands."""
    gates = [assemble_gate(load_gate_settings(p), DeviceFactories()) for p in paths]
    for g in gates:
        assert g.bridge is not None
        g.bridge.start()
    deadline = time.monotonic() + 60
    while not all(g.bridge and g.bridge.connected for g in gates):
        if time.monotonic() > deadline:
            raise RuntimeError("gates did not connect")
        time.sleep(0.05)
    time.sleep(1.0)  # let the connect-time statuses and policy requests settle
    pipe.send("ready")
    while pipe.recv() == "watch":
        pipe.send(watch(gates))
    for g in gates:
        g.close()


def watch(gates: list[Gate]) -> list[float]:
    """Poll every gate's live policy until each shows a newer version: monotonic times."""
    before = [g.agent.live_policy().policy_version for g in gates]
    seen: list[float | None] = [None] * len(gates)
    deadline = time.monotonic() + 30
    while any(s is None for s in seen):
        now = time.monotonic()
        for i, g in enumerate(gates):
            if seen[i] is None and g.agent.live_policy().policy_version > before[i]:
                seen[i] = now
        if now > deadline:
            raise RuntimeError(f"{seen.count(None)} gates never applied the change")
        time.sleep(POLL_S)
    return [s for s in seen if s is not None]


@contextmanager
def online_gates(api: Api, workdir: Path, n: int) -> Iterator[Connection]:
    """N provisioned gates online in their own process (so they do not share central's GIL)."""
    paths = [provision(api, workdir, f"g{i:03d}") for i in range(n)]
    ours, theirs = mp.Pipe()
    host = mp.get_context("spawn").Process(target=host_gates, args=(paths, theirs), daemon=True)
    host.start()
    try:
        if not ours.poll(120) or ours.recv() != "ready":
            raise RuntimeError("the gates' process did not come up")
        yield ours
    finally:
        ours.send("stop")
        host.join(30)


def propagate(gates: Connection, call: Callable[[], object], api_ms: list[float]) -> list[float]:
    """Latency per gate (ms) from just before `call` until its live policy version grew.

    CLOCK_MONOTONIC is one clock for every process on the machine.
    """
    gates.send("watch")
    time.sleep(0.05)  # the watcher has read the versions before the change
    started = time.monotonic()
    call()
    api_ms.append((time.monotonic() - started) * 1000)
    return [(t - started) * 1000 for t in gates.recv()]


class Api:
    """The admin's calls, each raising on an error status."""

    def __init__(self, client: TestClient, site: str) -> None:
        self.client, self.site = client, site
        self.admin = make_users(client)[Role.ADMIN]

    def call(self, method: str, url: str, **kwargs: object) -> dict[str, object]:
        r = self.client.request(method, url, headers=self.admin, **kwargs)  # type: ignore[arg-type]
        r.raise_for_status()
        out: dict[str, object] = r.json()
        return out

    def lockdown(self) -> int:
        body = {"site": self.site, "mode": "residents_only", "reason": "bench"}
        return int(str(self.call("POST", "/api/v1/lockdowns", json=body)["id"]))

    def end(self, order_id: int) -> None:
        self.call("DELETE", f"/api/v1/lockdowns/{order_id}")

    def temperature(self, mode: str) -> None:
        self.call("PUT", f"/api/v1/sites/{self.site}/policy", json={"temperature": mode})


def rounds(api: Api, gates: Connection, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"lockdown": [], "policy": [], "api_call": []}
    for r in range(n):
        order: list[int] = []
        out["lockdown"] += propagate(gates, lambda: order.append(api.lockdown()), out["api_call"])  # noqa: B023
        out["lockdown"] += propagate(gates, lambda: api.end(order[0]), out["api_call"])  # noqa: B023
        mode = "required" if r % 2 == 0 else "advisory"
        out["policy"] += propagate(gates, lambda: api.temperature(mode), out["api_call"])  # noqa: B023
    return out


def report(n: int, kind: str, samples: list[float]) -> None:
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    what = "the API call itself" if kind == "api_call" else "API call -> applied at the gate"
    print(
        f"{n:>4} gates  {kind:<9} {what:<32} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
        f"  max {max(samples):7.1f} ms  ({len(samples)} samples)"
    )


def report_raw(when: str, port: int) -> None:
    raw = measure_raw(port, 200)
    p50, p99 = percentile(raw, 0.5), percentile(raw, 0.99)
    print(
        f"raw broker round trip {when} (paho QoS 1, 200 msgs): p50 {p50:.2f} ms  p99 {p99:.2f} ms"
    )


def run(counts: list[int], n_rounds: int, workdir: Path) -> None:
    broker = Mosquitto(workdir)
    broker.start()
    try:
        report_raw("before", broker.port)
        for n in counts:
            site_dir = workdir / f"n{n}"
            site_dir.mkdir()
            settings = central_settings(site_dir, broker.url)
            with TestClient(create_app(settings)) as client:
                api = Api(client, f"bench-{n}")
                with online_gates(api, site_dir, n) as gates:
                    results = rounds(api, gates, n_rounds)
            for kind, samples in results.items():
                report(n, kind, samples)
            report_raw(f"after {n} gates", broker.port)
    finally:
        broker.stop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", default="1,10,100", help="Comma-separated gate counts.")
    parser.add_argument("--rounds", type=int, default=10, help="Rounds of 3 changes per count.")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.gates.split(",")]
    print_machine(["benchmarks/bench_policy.py", *argv], {"gates": counts, "rounds": args.rounds})
    with tempfile.TemporaryDirectory(prefix="menjin-bench-policy-") as tmp:
        run(counts, args.rounds, Path(tmp))
    print_load("at end")


if __name__ == "__main__":
    main(sys.argv[1:])
