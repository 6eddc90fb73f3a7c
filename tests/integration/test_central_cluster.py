"""Central as several replicas (#15): refused subscriptions, one leader per job, own status."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import Response
from sqlalchemy import create_engine, insert, select
from sqlalchemy import event as sa_event

from central import retention
from central.leadership import Job, Leadership
from central.live import LiveHub
from central.metrics import Metrics
from central.routes.ops import readyz
from central.store.db import make_engine, upgrade
from central.store.tables import events
from protocol import topics
from protocol.topics import GateTopic
from tests.conftest import skip_or_fail
from tests.integration.agent_helpers import wait_for
from tests.integration.ingest_helpers import SITE, raw_client, running_central
from tests.integration.services import Mosquitto, pg_schema
from tests.integration.stack import stored

AT = "2026-12-01T08:00:00+08:00"


def batch(gate: str, *seqs: int) -> str:
    events = [{"v": 1, "epoch": 1, "seq": s, "at": AT, "type": "decision"} for s in seqs]
    return json.dumps({"v": 1, "site": SITE, "gate": gate, "events": events})


def retained(port: int, topic: str) -> dict[str, Any] | None:
    """The retained payload on `topic` now, as JSON (None: nothing retained)."""
    got: list[bytes] = []
    client = raw_client(port)
    client.on_message = lambda c, u, m: got.append(bytes(m.payload)) if m.retain else None
    client.subscribe(topic, qos=1)
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()
    return json.loads(got[-1]) if got else None


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


# --- SUBACK --------------------------------------------------------------------------------


DYNSEC = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


class Dynsec:
    """A Mosquitto whose ACLs are the dynamic-security plugin's, changed at run time.

    Mosquitto's acl_file never refuses a SUBSCRIBE (it filters at delivery, and grants the
    SUBACK); the plugin's subscribePattern ACLs refuse it, as a NATS node under load does.
    """

    def __init__(self, workdir: Path) -> None:
        ctrl = shutil.which("mosquitto_ctrl")
        if ctrl is None or not DYNSEC.exists():
            skip_or_fail("mosquitto_ctrl or the dynamic-security plugin is missing")
        self.ctrl = str(ctrl)
        config = workdir / "dynsec.json"
        self._run("init", str(config), "admin", "admin-pw", port=None)
        self.mq = Mosquitto(workdir, extra_conf=f"allow_anonymous false\nplugin {DYNSEC}\n"
                            f"plugin_opt_config_file {config}\n")  # fmt: skip
        self.mq.start()

    def _run(self, *args: str, port: int | None = 0) -> None:
        where = [] if port is None else ["-h", "127.0.0.1", "-p", str(self.mq.port),
                                         "-u", "admin", "-P", "admin-pw"]  # fmt: skip
        subprocess.run([self.ctrl, *where, "dynsec", *args], check=True, capture_output=True)

    def user(self, name: str, password: str, *acls: tuple[str, str]) -> None:
        self._run("createClient", name, "-p", password)
        self._run("createRole", name)
        self._run("addClientRole", name, name)
        self.allow(name, *acls)

    def allow(self, role: str, *acls: tuple[str, str]) -> None:
        for kind, pattern in acls:
            self._run("addRoleACL", role, kind, pattern, "allow")


def test_a_refused_events_subscription_keeps_central_unready_until_the_broker_grants_it(
    workdir: Path,
) -> None:
    """A broker that refuses central's gate filters: every SUBACK refusal is seen, counted,
    shown in /metrics and /readyz, and asked for again with backoff; once the ACL is fixed on
    the running broker, the next retry is granted and gates are heard."""
    broker = Dynsec(workdir)
    everything = f"{topics.PREFIX}/#"
    try:
        broker.user("central", "central-pw", ("publishClientSend", everything),
                    ("subscribePattern", f"{topics.PREFIX}/central/#"))  # fmt: skip
        broker.user("gate", "gate-pw", ("publishClientSend", everything))
        mqtt = {"url": broker.mq.url, "username": "central", "password": "central-pw"}
        with running_central(workdir, mqtt, wait_ready=False) as central:
            ingest = central.ingest
            events_filter = ingest.filters[0]
            wait_for(lambda: events_filter in ingest.link.refused(), 10, "the refused SUBACK")
            assert not ingest.ready()
            body = readyz(central.engine, ingest, Response())
            assert body["checks"] == {"database": True, "broker": True,
                                      "events_subscription": False}  # fmt: skip
            metrics = Metrics(central.engine, LiveHub())
            metrics.ingest = ingest
            text = metrics.render().decode()
            assert f'menjin_mqtt_subscription_refused{{filter="{events_filter}"}} 1.0' in text
            refusals = ingest.counts["suback_refusals"]
            wait_for(lambda: ingest.counts["suback_refusals"] > refusals, 10, "a retry")

            broker.allow("central", ("subscribePattern", everything),
                         ("subscribePattern", "$share/#"))  # fmt: skip
            wait_for(ingest.ready, 40, "the events subscription granted after the fix")
            assert ingest.link.refused() == []
            assert readyz(central.engine, ingest, Response())["ready"] is True
            gate = raw_client(broker.mq.port, "gate", "gate-pw")
            gate.publish(topics.gate_topic(SITE, "east", GateTopic.EVENTS), batch("east", 1), 1)
            wait_for(lambda: len(stored(central.url, SITE, "east")) == 1, 10, "stored")
            gate.loop_stop()
    finally:
        broker.mq.stop()


# --- leadership ----------------------------------------------------------------------------

HOLDER = """
import sys, time
from sqlalchemy import create_engine, insert, select
from sqlalchemy import event as sa_event
from central import retention
from central.leadership import Job, Leadership
lead = Leadership(create_engine(sys.argv[1]))
assert all(lead.leads(job) for job in Job)
print("leading", flush=True)
time.sleep(120)
"""


def test_a_job_has_one_leader_and_another_replica_takes_over_when_it_is_killed(
    pg_url: str,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, pg_url], stdout=subprocess.PIPE, text=True
    )
    engine = create_engine(pg_url)
    other = Leadership(engine)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "leading"
        assert not any(other.leads(job) for job in Job)
        holder.send_signal(signal.SIGKILL)
        holder.wait(5)
        # The kernel closes the dead process's socket; PostgreSQL ends its session at once.
        wait_for(lambda: all(other.leads(job) for job in Job), 10, "the takeover")
        assert other.held() == set(Job)
    finally:
        holder.kill()
        other.close()
        engine.dispose()


def test_in_another_schema_the_same_job_has_its_own_leader(pg_url: str) -> None:
    with pg_schema() as second:
        a, b = Leadership(create_engine(pg_url)), Leadership(create_engine(second))
        try:
            assert a.leads(Job.HOLES) and b.leads(Job.HOLES)
        finally:
            a.close()
            b.close()


def test_two_replicas_chase_a_hole_once_and_raise_one_missing_events_alert(
    workdir: Path, live_broker: Mosquitto, pg_url: str
) -> None:
    """Two replicas on one PostgreSQL: only the leader asks for replays, max_replays of them,
    and one alert is raised when it gives up."""
    replays: list[int] = []
    gate = raw_client(live_broker.port)
    gate.on_message = lambda c, u, m: (
        replays.append(1) if json.loads(m.payload).get("replay_from") else None
    )
    gate.subscribe(topics.gate_topic(SITE, "east", GateTopic.ACK), qos=1)
    fast: dict[str, Any] = {"gap_replay_after_s": 0.3, "max_replays": 3}
    mqtt = {"url": live_broker.url}
    with (
        running_central(workdir, mqtt, db_url=pg_url, cluster={"replica": "r1"}, **fast) as one,
        running_central(workdir, mqtt, db_url=pg_url, cluster={"replica": "r2"}, **fast) as two,
    ):
        wait_for(lambda: one.ingest.ready() and two.ingest.ready(), 10, "both subscribed")
        for seq in (1, 3):  # 2 never comes
            gate.publish(topics.gate_topic(SITE, "east", GateTopic.EVENTS), batch("east", seq), 1)
            time.sleep(0.2)
        wait_for(lambda: one.alerts("missing_events"), 20, "the missing_events alert")
        time.sleep(2.0)  # time for a second replica's alert or replays, if it made any
        assert len(one.alerts("missing_events")) == 1
        assert len(replays) == 3
        leaders = [c for c in (one, two) if Job.HOLES in c.ingest.leadership.held()]
        assert len(leaders) == 1
        by_replica = {c is leaders[0]: c.ingest.counts["replay_requests"] for c in (one, two)}
        assert by_replica == {True: 3, False: 0}
    gate.loop_stop()


# --- status ----------------------------------------------------------------------------------


def test_each_replica_has_its_own_status_and_the_shared_one_stays_online(
    workdir: Path, live_broker: Mosquitto
) -> None:
    mqtt = {"url": live_broker.url}
    port = live_broker.port
    with running_central(workdir, mqtt, cluster={"replica": "stays"}):
        with running_central(workdir, mqtt, cluster={"replica": "goes"}):
            time.sleep(0.5)
            for replica in ("stays", "goes"):
                own = retained(port, topics.central_replica_status_topic(replica))
                assert own is not None and own["state"] == "online"
        # "goes" stopped cleanly: offline on its own topic and, for a moment, the shared one.
        gone = retained(port, topics.central_replica_status_topic("goes"))
        assert gone is not None and gone["state"] == "offline"
        wait_for(
            lambda: (retained(port, topics.central_status_topic()) or {}).get("state") == "online",
            5, "the shared status online again",
        )  # fmt: skip
        stays = retained(port, topics.central_replica_status_topic("stays"))
        assert stays is not None and stays["state"] == "online"


# --- broker failover -------------------------------------------------------------------------


def test_central_fails_over_to_the_next_broker_url_when_its_broker_dies(workdir: Path) -> None:
    first, second = Mosquitto(workdir), Mosquitto(workdir)
    first.start()
    second.start()
    try:
        mqtt = {"urls": [first.url, second.url]}
        with running_central(workdir, mqtt) as central:
            ingest = central.ingest
            wait_for(ingest.ready, 10, "subscribed on the first broker")
            assert ingest.link.port == first.port
            first.kill()
            wait_for(lambda: ingest.link.port == second.port and ingest.ready(), 30,
                     "connected and subscribed on the second broker")  # fmt: skip
            assert ingest.counts["failovers"] >= 1
            gate = raw_client(second.port)
            gate.publish(topics.gate_topic(SITE, "east", GateTopic.EVENTS), batch("east", 1), 1)
            wait_for(lambda: len(stored(central.url, SITE, "east")) == 1, 10, "stored")
            gate.loop_stop()
    finally:
        first.stop()
        second.stop()


# --- retention -------------------------------------------------------------------------------


def test_the_purge_deletes_in_bounded_batches_and_keeps_what_is_young(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for seq in range(1, 15):
            received = now - timedelta(days=400 if seq <= 12 else 1)
            conn.execute(insert(events).values(
                site=SITE, gate="east", epoch=1, seq=seq, type="decision", at=received,
                received_at=received, details={},
            ))  # fmt: skip
    deletes: list[str] = []
    sa_event.listen(engine, "before_cursor_execute",
                    lambda c, cur, stmt, *a: deletes.append(stmt) if stmt.startswith("DELETE")
                    else None)  # fmt: skip
    try:
        assert retention.purge_older(engine, events, now - timedelta(days=365), batch=5) == 12
        with engine.connect() as conn:
            left = conn.execute(select(events.c.seq).order_by(events.c.seq)).scalars().all()
    finally:
        engine.dispose()
    assert left == [13, 14]
    assert len(deletes) == 3  # 5 + 5 + 2, each its own transaction
