"""Nothing lost: gate journal -> MQTT -> central, exactly once, through crashes of every part."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from central.store import presence
from central.store.db import make_engine, upgrade
from edge.config import load_gate_settings
from tests.integration.agent_helpers import make_keys, wait_for
from tests.integration.services import Mosquitto, pg_schema
from tests.integration.stack import (
    Proc,
    central_config,
    central_proc,
    duplicates,
    gate_config,
    gate_proc,
    journalled,
    stored,
    write_decisions,
)


@dataclass
class Stack:
    broker: Mosquitto
    db_url: str
    central_cfg: Path
    gate_cfg: Path
    cache_path: Path
    site: str
    gate: str
    central: Proc
    agent: Proc

    def complete(self) -> bool:
        return stored(self.db_url, self.site, self.gate) == journalled(self.cache_path)

    def wait_complete(self, timeout: float = 60.0) -> None:
        try:
            wait_for(self.complete, timeout, "central to hold exactly the gate journal")
        except AssertionError:
            have = stored(self.db_url, self.site, self.gate)
            want = journalled(self.cache_path)
            missing = sorted(set(want) - set(have))[:10]
            extra = sorted(set(have) - set(want))[:10]
            raise AssertionError(
                f"central {len(have)} vs journal {len(want)}; missing {missing}; extra {extra}\n"
                f"central log: {self.central.tail()}\ngate log: {self.agent.tail()}"
            ) from None
        assert duplicates(self.db_url) == 0


def make_stack(workdir: Path, broker: Mosquitto, db_url: str, site: str) -> Stack:
    key = make_keys(workdir)
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        presence.register_gate(conn, site, "east", datetime.now(UTC))
    engine.dispose()
    ccfg = central_config(workdir, db_url, broker.url)
    gcfg = gate_config(workdir, site, "east", broker.url, key)
    return Stack(
        broker, db_url, ccfg, gcfg, load_gate_settings(gcfg).cache_path(), site, "east",
        central_proc(ccfg), gate_proc(gcfg),
    )  # fmt: skip


@pytest.fixture
def stack(workdir: Path, live_broker: Mosquitto, request: pytest.FixtureRequest) -> Iterator[Stack]:
    site = f"s{abs(hash(request.node.name)) % 10**8}"
    s = make_stack(workdir, live_broker, f"sqlite:///{workdir / 'central.db'}", site)
    s.central.start()
    s.agent.start()
    yield s
    s.agent.stop()
    s.central.stop()


def test_journal_reaches_central_exactly_once(stack: Stack) -> None:
    write_decisions(stack.cache_path, 300)
    stack.wait_complete()
    assert len(stored(stack.db_url, stack.site, stack.gate)) >= 301  # + agent_start


def test_broker_killed_and_restarted_mid_stream(stack: Stack) -> None:
    writer = threading.Thread(target=write_decisions, args=(stack.cache_path, 600))
    writer.start()
    wait_for(lambda: len(stored(stack.db_url, stack.site, stack.gate)) > 50, 30, "first events")
    stack.broker.kill()  # forgets every session and in-flight message
    time.sleep(1.5)
    stack.broker.start()
    writer.join()
    stack.wait_complete(90)


def test_gate_agent_killed_mid_burst_and_restarted(stack: Stack) -> None:
    writer = threading.Thread(target=write_decisions, args=(stack.cache_path, 600))
    writer.start()
    wait_for(lambda: len(stored(stack.db_url, stack.site, stack.gate)) > 50, 30, "first events")
    stack.agent.kill()
    time.sleep(0.5)
    stack.agent.start()
    writer.join()

    def boots() -> int:
        return sum(t == "agent_start" for _, _, t, _ in journalled(stack.cache_path))

    wait_for(lambda: boots() == 2, 30, "the restarted agent to boot")
    stack.wait_complete(90)
    starts = [(e, s) for e, s, t, _ in journalled(stack.cache_path) if t == "agent_start"]
    assert len({e for e, _ in starts}) == 2, starts  # two boots, two epochs, both stored


def test_central_killed_mid_ingest_and_restarted(stack: Stack) -> None:
    writer = threading.Thread(target=write_decisions, args=(stack.cache_path, 600))
    writer.start()
    wait_for(lambda: len(stored(stack.db_url, stack.site, stack.gate)) > 50, 30, "first events")
    stack.central.kill()
    time.sleep(1.0)
    stack.central.start()
    writer.join()
    stack.wait_complete(90)


def _broker_outage(stack: Stack, seconds: float, count: int) -> None:
    stack.broker.kill()
    write_decisions(stack.cache_path, count, tag="offline")
    time.sleep(seconds)
    stack.broker.start()
    stack.wait_complete(120)


def test_broker_down_while_hundreds_of_decisions_queue(stack: Stack) -> None:
    stack.wait_complete()
    _broker_outage(stack, seconds=8, count=500)


@pytest.mark.slow
def test_broker_down_for_minutes(stack: Stack) -> None:
    stack.wait_complete()
    _broker_outage(stack, seconds=180, count=5000)


def test_two_central_replicas_share_the_load_on_postgresql(
    workdir: Path, live_broker: Mosquitto
) -> None:
    with pg_schema() as db_url:
        s = make_stack(workdir, live_broker, db_url, "pgsite")
        second = central_proc(central_config(workdir, db_url, live_broker.url))
        s.central.start()
        second.start()
        s.agent.start()
        try:
            writer = threading.Thread(target=write_decisions, args=(s.cache_path, 800))
            writer.start()
            time.sleep(0.8)
            second.kill()  # one replica dies mid-stream; the other carries on
            writer.join()
            second.start()
            write_decisions(s.cache_path, 200)
            s.wait_complete(120)
        finally:
            s.agent.stop()
            s.central.stop()
            second.stop()
