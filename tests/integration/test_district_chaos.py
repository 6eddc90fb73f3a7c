"""Chaos at district scale: a simulated fleet (real journal, real bridge) on a broker that loses
nodes, central replicas that die, and a broker that restarts empty; nothing lost, nothing twice.

CI runs a bounded fleet; `-m slow` runs 1,000 gates. Central runs on PostgreSQL as real
processes. On NATS (no shared subscriptions) both replicas store every batch, which the
idempotent store makes harmless; sharing that work is central's side of #15.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from menjin.sim_fleet import FleetSpec
from menjin.sim_provision import mosquitto_users, nats_users
from tests.integration.district_helpers import District, district, replica
from tests.integration.nats_cluster import NatsCluster
from tests.integration.services import Mosquitto, pg_schema, secured_conf

# One broker user per replica: with use_username_as_clientid two replicas sharing a user would
# take turns throwing each other off the broker.
CENTRALS = {"central-1": "central-chaos-pw-1", "central-2": "central-chaos-pw-2"}
ROUND = 3  # journal entries per gate per phase
SEED = "chaos-seed"


def _spec(workdir: Path, urls: list[str], gates: int, qos: int = 1) -> FleetSpec:
    return FleetSpec(workdir=workdir / "fleet", urls=urls, password_seed=SEED, gates=gates,
                     events=0, rate=2.0, site="chaos", processes=4, resend_after_s=3.0,
                     failover_jitter_s=2.0, qos=qos)  # fmt: skip


@pytest.fixture
def db_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


def _report(d: District, broker: str) -> None:
    # Kept in the test log (pytest -s, or on failure) for docs/operations.md's figures.
    for row in d.log:
        print(json.dumps({"broker": broker, "gates": d.spec.gates} | row, sort_keys=True))


def run_nats(tmp_path: Path, db_url: str, gates: int, settle_s: float) -> None:
    spec = _spec(tmp_path, ["mqtt://placeholder:1"], gates)
    cluster = NatsCluster(tmp_path, CENTRALS | nats_users(spec))
    cluster.start()
    # QoS 0 on NATS, as docs/operations.md says: at QoS 1 every message is a JetStream write and
    # every subscription a consumer, and 1,000 gates' worth of those stalled 3 nodes on 2 cores.
    spec = _spec(tmp_path, cluster.urls, gates, qos=0)
    central_node = cluster.nodes[2]
    try:
        with district(spec, db_url) as d:
            d.centrals = [
                replica(tmp_path, db_url, {"url": central_node.url, "username": user,
                                           "password": pw, "shared_subscriptions": False, "qos": 0})
                for user, pw in CENTRALS.items()
            ]  # fmt: skip
            d.fleet.start(send=False)
            d.fleet.wait("connected", settle_s)
            d.round(ROUND)
            d.settle("warm-up", settle_s)
            # (a) the node a third of the gates prefer dies mid-round and comes back
            d.round(ROUND)
            cluster.nodes[0].kill()
            time.sleep(2)
            cluster.nodes[0].start()
            d.settle("a: gate node killed", settle_s)
            # (b) central's own node dies: central is deaf until it is back
            d.round(ROUND)
            central_node.kill()
            time.sleep(2)
            central_node.start()
            d.settle("b: central's node killed", settle_s)
            # (c) one of the two replicas is SIGKILLed mid-round
            d.round(ROUND)
            d.centrals[1].kill()
            d.settle("c: a replica killed", settle_s)
            # (d) the whole cluster restarts with no JetStream state at all
            d.round(ROUND)
            cluster.restart_empty()
            d.settle("d: cluster restarted empty", settle_s)
            d.assert_exactly_once()
            _report(d, "nats")
    finally:
        cluster.stop()


def run_mosquitto(tmp_path: Path, db_url: str, gates: int, settle_s: float) -> None:
    from central import broker_users

    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    for user, pw in CENTRALS.items():
        broker_users.add_user(passwd, user, pw)
        broker_users.add_acl(acl, broker_users.central_acl(user))
    mq = Mosquitto(tmp_path, extra_conf=secured_conf(passwd, acl))
    spec = _spec(tmp_path, [mq.url], gates)
    mosquitto_users(spec, passwd, acl)
    mq.start()
    try:
        with district(spec, db_url) as d:
            d.centrals = [
                replica(tmp_path, db_url, {"url": mq.url, "username": user, "password": pw})
                for user, pw in CENTRALS.items()
            ]
            d.fleet.start(send=False)
            d.fleet.wait("connected", settle_s)
            d.round(ROUND)
            d.settle("warm-up", settle_s)
            # Mosquitto does not cluster: (a), (b) and (d) are all "the broker dies, empty".
            d.round(ROUND)
            d.centrals[1].kill()
            d.settle("c: a replica killed", settle_s)
            d.round(ROUND)
            mq.kill()
            time.sleep(2)
            mq.start()
            d.settle("a+b+d: broker killed, restarted empty", settle_s)
            d.assert_exactly_once()
            _report(d, "mosquitto")
    finally:
        mq.stop()


def test_nats_cluster_chaos_bounded(tmp_path: Path, db_url: str) -> None:
    run_nats(tmp_path, db_url, gates=150, settle_s=90)


def test_mosquitto_chaos_bounded(tmp_path: Path, db_url: str) -> None:
    run_mosquitto(tmp_path, db_url, gates=150, settle_s=60)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_nats_cluster_chaos_1000_gates(tmp_path: Path, db_url: str) -> None:
    run_nats(tmp_path, db_url, gates=1000, settle_s=300)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_mosquitto_chaos_1000_gates(tmp_path: Path, db_url: str) -> None:
    run_mosquitto(tmp_path, db_url, gates=1000, settle_s=300)
