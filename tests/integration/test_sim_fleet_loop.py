"""300 simulated gates in one process on the shared network loop (menjin/sim_loop.py): a broker
that dies and restarts empty loses nothing and stores nothing twice, and the process holds a
handful of threads where the agent's threads would be two per gate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from central import broker_users
from menjin.sim_fleet import FleetSpec
from menjin.sim_provision import mosquitto_users
from tests.integration.district_helpers import district, replica
from tests.integration.services import Mosquitto, pg_schema, secured_conf

GATES = 300
CENTRAL_USER, CENTRAL_PW = "central-loop", "central-loop-pw"


@pytest.fixture
def db_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


def test_300_gates_in_one_process_survive_a_broker_restart(tmp_path: Path, db_url: str) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    broker_users.add_user(passwd, CENTRAL_USER, CENTRAL_PW)
    broker_users.add_acl(acl, broker_users.central_acl(CENTRAL_USER))
    mq = Mosquitto(tmp_path, extra_conf=secured_conf(passwd, acl))
    spec = FleetSpec(workdir=tmp_path / "fleet", urls=[mq.url], password_seed="loop-seed",
                     gates=GATES, events=0, rate=2.0, site="loop", processes=1,
                     resend_after_s=3.0, failover_jitter_s=2.0)  # fmt: skip
    mosquitto_users(spec, passwd, acl)
    mq.start()
    try:
        with district(spec, db_url) as d:
            d.centrals = [replica(tmp_path, db_url, {"url": mq.url, "username": CENTRAL_USER,
                                                     "password": CENTRAL_PW})]  # fmt: skip
            d.fleet.start(send=False)
            d.fleet.wait("connected", 120)
            d.round(3)
            warm = d.settle("warm-up", 120)
            d.round(3)
            mq.kill()  # mid-round: some entries are in flight, some not yet written
            time.sleep(2)
            mq.start()
            after = d.settle("broker killed, restarted empty", 120)
            d.assert_exactly_once()
    finally:
        mq.stop()
    assert after["connects"] >= 2 * GATES  # every gate really lost its link and came back
    assert warm["processes"] == after["processes"] == 1
    # main, the loop, multiprocessing's queue feeder, a spare or two; the agent's way: 2 per gate
    assert after["threads_max"] <= 8, after
