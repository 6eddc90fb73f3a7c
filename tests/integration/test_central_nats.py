"""Two central replicas on NATS's MQTT (no $share): sites partitioned, each event stored once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from central.store import presence
from central.store.db import make_engine, upgrade
from central.store.tables import events
from protocol import topics
from protocol.topics import GateTopic
from tests.integration.agent_helpers import wait_for
from tests.integration.ingest_helpers import Central, raw_client, running_central
from tests.integration.nats_node import NatsNode
from tests.integration.services import pg_schema

SITES = [f"d{i}" for i in range(8)]
GATES = ["g0", "g1"]
AT = "2026-12-01T08:00:00+08:00"


def batch(site: str, gate: str, seqs: range) -> str:
    evs = [{"v": 1, "epoch": 1, "seq": s, "at": AT, "type": "decision"} for s in seqs]
    return json.dumps({"v": 1, "site": site, "gate": gate, "events": evs})


@pytest.fixture
def nats(workdir: Path) -> Iterator[NatsNode]:
    node = NatsNode(workdir)
    node.start()
    yield node
    node.stop()


def stored_rows(url: str) -> tuple[int, int]:
    """(rows, distinct (site, gate, epoch, seq)) in the events table."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(events)).scalar_one()
            keys = conn.execute(
                select(func.count()).select_from(
                    select(events.c.site, events.c.gate, events.c.epoch, events.c.seq)
                    .distinct()
                    .subquery()
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return int(rows), int(keys)


def settled(replicas: list[Central]) -> bool:
    """Every site owned by exactly one replica, and every replica subscribed to its own."""
    owned = [c.ingest.owned_sites for c in replicas]
    if any(o is None for o in owned) or not all(c.ingest.ready() for c in replicas):
        return False
    flat = sorted(s for o in owned for s in o or [])
    return flat == sorted(SITES)


def publish_all(port: int, seqs: range, per_batch: int) -> int:
    client = raw_client(port)
    sent = 0
    for site in SITES:
        for gate in GATES:
            for start in range(seqs.start, seqs.stop, per_batch):
                part = range(start, min(start + per_batch, seqs.stop))
                topic = topics.gate_topic(site, gate, GateTopic.EVENTS)
                client.publish(topic, batch(site, gate, part), qos=1).wait_for_publish(5)
                sent += 1
    client.loop_stop()
    client.disconnect()
    return sent


def test_two_replicas_on_nats_split_the_sites_and_store_each_event_once(
    workdir: Path, nats: NatsNode
) -> None:
    with pg_schema() as url, ExitStack() as stack:
        engine = make_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            for site in SITES:
                for gate in GATES:
                    presence.register_gate(conn, site, gate, datetime.now(UTC))
        engine.dispose()
        cluster = {"partition_sites": True, "member_ttl_s": 3.0}
        replicas = [
            stack.enter_context(
                running_central(
                    workdir,
                    {"url": nats.url},
                    gates=(),
                    db_url=url,
                    cluster=cluster | {"replica": name},
                )
            )
            for name in ("r1", "r2")
        ]
        wait_for(lambda: settled(replicas), 30, "the sites split between the two replicas")
        sent = publish_all(nats.mqtt_port, range(1, 21), per_batch=5)
        total = len(SITES) * len(GATES) * 20
        wait_for(lambda: stored_rows(url)[0] == total, 30, "every event stored")
        received = [c.ingest.counts["received"] for c in replicas]
        stored = [c.ingest.counts["stored"] for c in replicas]
        print(f"batches sent {sent}, received by replica {received}, stored {stored}")
        assert sum(received) == sent  # no batch reached both replicas
        assert sum(stored) == total and all(n > 0 for n in stored)
        assert stored_rows(url) == (total, total)

        # r2 stops: r1 takes its sites at once (r2 left the membership) and stores them.
        second = replicas.pop()
        second.ingest.close()
        wait_for(lambda: replicas[0].ingest.owned_sites == SITES, 10, "r1 owns every site")
        wait_for(replicas[0].ingest.ready, 10, "r1 subscribed to every site")
        time.sleep(0.5)
        publish_all(nats.mqtt_port, range(21, 26), per_batch=5)
        more = len(SITES) * len(GATES) * 5
        wait_for(lambda: stored_rows(url)[0] == total + more, 30, "the later events stored")
        assert stored_rows(url) == (total + more, total + more)
