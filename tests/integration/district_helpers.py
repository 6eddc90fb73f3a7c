"""A district for chaos tests: a simulated fleet, central replicas as processes, PostgreSQL."""

from __future__ import annotations

import time
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from central.store.tables import events, gates
from menjin.sim_fleet import Fleet, FleetSpec
from menjin.sim_provision import register_gates
from protocol.keyfiles import init_key_dir
from protocol.settings_file import render_toml
from tests.integration.stack import Proc, central_config, central_proc, journalled, wait_http

Row = tuple[int, int, str, str | None]


def replica(workdir: Path, db_url: str, mqtt: dict[str, object]) -> Proc:
    """One `menjin central serve` on the district's database, started and healthy."""
    if not (workdir / "keys").exists():
        init_key_dir(workdir / "keys")
    config = central_config(workdir, db_url, str(mqtt["url"]), offline_grace_s=30.0)
    data = tomllib.loads(config.read_text())
    data["mqtt"].update(mqtt)
    config.write_text(render_toml(data, {}))
    proc = central_proc(config).start()
    try:
        wait_http(int(data["http"]["port"]), timeout=60)
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.tail()) from None
    return proc


@dataclass
class District:
    spec: FleetSpec
    db_url: str
    fleet: Fleet
    centrals: list[Proc] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)

    def round(self, events: int) -> None:
        """Every gate journals `events` more entries (at the fleet's rate)."""
        self.fleet.send(events)

    def settle(self, phase: str, timeout: float) -> dict[str, Any]:
        """Until every gate is connected, has journalled all, and central acked all."""
        started = time.monotonic()
        try:
            self.fleet.wait("drained", timeout)
            totals = self.fleet.poll(1.5)  # the latencies of the last acks come a report later
        except TimeoutError as exc:
            tails = "\n".join(c.tail()[-1500:] for c in self.centrals)
            raise AssertionError(f"{phase}: {exc}\ncentral logs:\n{tails}") from None
        totals |= {"phase": phase, "settled_s": round(time.monotonic() - started, 1)}
        self.log.append(totals)
        return totals

    def assert_exactly_once(self) -> None:
        """Central's rows and every gate's journal, id for id; no gate offline in central."""
        have = stored_by_gate(self.db_url, self.spec.site)
        wrong = []
        for gate in self.spec.gate_ids():
            want = journalled(self.spec.cache_path(gate))
            if have.get(gate, []) != want:
                wrong.append((gate, len(have.get(gate, [])), len(want)))
        assert not wrong, f"{len(wrong)} gates differ (gate, stored, journalled): {wrong[:5]}"
        wait_online(self.db_url, self.spec.site, self.spec.gates, 60)


def stored_by_gate(db_url: str, site: str) -> dict[str, list[Row]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(events.c.gate, events.c.epoch, events.c.seq, events.c.type,
                       events.c.pass_id)
                .where(events.c.site == site)
                .order_by(events.c.gate, events.c.epoch, events.c.seq)
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    out: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        out[str(r[0])].append((int(r[1]), int(r[2]), str(r[3]), r[4]))
    return out


def wait_online(db_url: str, site: str, expected: int, timeout: float) -> None:
    engine = create_engine(db_url)
    deadline = time.monotonic() + timeout
    online = 0
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                online = int(conn.execute(
                    select(func.count()).where(gates.c.site == site, gates.c.online.is_(True))
                ).scalar_one())  # fmt: skip
            if online == expected:
                return
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise AssertionError(f"{online} of {expected} gates online in central after {timeout} s")


@contextmanager
def district(spec: FleetSpec, db_url: str) -> Iterator[District]:
    """Register the fleet's gates, start it (no sending yet), stop it and its centrals after."""
    register_gates(spec, db_url)
    d = District(spec, db_url, Fleet(spec))
    try:
        yield d
    finally:
        d.fleet.stop()
        for c in d.centrals:
            c.stop()
