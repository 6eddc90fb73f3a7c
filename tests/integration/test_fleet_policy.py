"""Signed policy from a real central to real gates over the private broker (issue #11)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from central.store.tables import events
from edge.assemble import Gate
from edge.decide import Reason
from protocol import topics
from protocol.epass import HolderKind
from protocol.gate_policy import TemperaturePolicy
from protocol.policy import PolicyDocument, PolicyRefusal, SignedPolicy, sign_policy
from protocol.topics import GateTopic
from tests.integration.agent_helpers import issue, wait_for
from tests.integration.fleet_helpers import Fleet, fleet_central
from tests.integration.services import Mosquitto


@pytest.fixture
def fleet(tmp_path: Path, live_broker: Mosquitto) -> Iterator[Fleet]:
    with fleet_central(tmp_path, live_broker) as f:
        yield f


def present(gate: Gate, text: str) -> Reason:
    decision, _ = gate.agent.present(text)
    return decision.reason


def version(gate: Gate) -> int:
    return gate.agent.live_policy().policy_version


def set_gate_policy(fleet: Fleet, gate: str, **fields: object) -> dict[str, object]:
    url = f"/api/v1/gates/{fleet.gate_ids[gate]}/policy"
    out: dict[str, object] = fleet.api("PUT", url, json=fields)
    return out


def test_policy_change_is_enforced_within_2_s(fleet: Fleet) -> None:
    fleet.provision("east")
    gate = fleet.connected(fleet.start("east").settings.gate.gate)
    text = issue(fleet.pass_key(), site=fleet.site)
    assert present(gate, text) is Reason.OK  # the TOML's policy: temperature off
    started = time.monotonic()
    out = set_gate_policy(fleet, "east", temperature="required")
    wait_for(lambda: gate.agent.live_policy().temperature is TemperaturePolicy.REQUIRED, 2.0)
    assert present(gate, text) is Reason.NO_TEMPERATURE  # no thermometer: no reading
    assert time.monotonic() - started < 2.0
    assert version(gate) == out["version"] == 1
    wait_for(lambda: gates_row(fleet, "east")["policy_version"] == 1, 5, "version reported")
    assert gates_row(fleet, "east")["policy_latest"] == 1


def gates_row(fleet: Fleet, gate: str) -> dict[str, object]:
    rows = fleet.api("GET", "/api/v1/gates", params={"site": fleet.site})
    [row] = [r for r in rows if r["gate"] == gate]
    return dict(row)


def raw_publish(broker: Mosquitto, topic: str, payload: bytes | str) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_refused_documents_are_counted_and_the_policy_stays(fleet: Fleet) -> None:
    fleet.provision("east")
    fleet.provision("west")
    gate = fleet.connected(fleet.start("east").settings.gate.gate)
    set_gate_policy(fleet, "east", temperature="advisory")
    set_gate_policy(fleet, "west", temperature="required")
    first = stored_signed(fleet, "east")
    set_gate_policy(fleet, "east", temperature="required")
    wait_for(lambda: version(gate) == 2, 2.0, "v2 applied")
    own = PolicyDocument.model_validate_json(stored_signed(fleet, "east").document)
    forged = sign_policy(
        own.model_copy(update={"version": 99, "temperature": TemperaturePolicy.OFF}),
        SigningKey.generate(),
    )
    topic = topics.gate_topic(fleet.site, "east", GateTopic.POLICY)
    sends = {
        PolicyRefusal.UNKNOWN_KEY: forged.model_dump_json(),
        PolicyRefusal.STALE: first.model_dump_json(),  # v1, genuinely signed: a replay
        PolicyRefusal.WRONG_GATE: stored_signed(fleet, "west").model_dump_json(),
        PolicyRefusal.GARBAGE: b"\x00 not a policy",
    }
    for payload in sends.values():
        raw_publish(fleet.broker, topic, payload)
    counters = gate.agent.counters
    for refusal in sends:
        wait_for(lambda r=refusal: counters()[f"policy_refused_{r.value}"] == 1, 5, refusal)
    assert counters()["policy_refused"] == 4
    assert version(gate) == 2
    assert gate.agent.live_policy().temperature is TemperaturePolicy.REQUIRED
    # Central sees them: in the gate's counters and as journalled security events.
    wait_for(lambda: gates_row(fleet, "east")["counters"].get("policy_refused") == 4, 5)  # type: ignore[attr-defined]
    wait_for(lambda: len(stored_events(fleet, "east", "policy_refused")) == 4, 10)


def stored_signed(fleet: Fleet, gate: str) -> SignedPolicy:
    from central import fleet as central_fleet

    with fleet.client.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
        signed = central_fleet.document_for(conn, fleet.site, gate)[1]
    assert signed is not None
    return signed


def stored_events(fleet: Fleet, gate: str, kind: str) -> list[str | None]:
    with fleet.client.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
        query = select(events.c.reason).where(
            events.c.site == fleet.site, events.c.gate == gate, events.c.type == kind
        )
        return [r.reason for r in conn.execute(query)]


def test_a_gate_offline_during_a_change_applies_it_on_reconnect(fleet: Fleet) -> None:
    fleet.provision("east")
    fleet.connected(fleet.start("east").settings.gate.gate)
    fleet.stop("east")
    set_gate_policy(fleet, "east", anti_passback="hard", direction="in")
    gate = fleet.connected(fleet.start("east").settings.gate.gate)
    wait_for(lambda: version(gate) == 1, 5, "applied on reconnect")
    text = issue(fleet.pass_key(), site=fleet.site)
    assert present(gate, text) is Reason.OK
    assert present(gate, text) is Reason.PASSBACK


def test_policy_survives_an_agent_restart_with_the_broker_down(fleet: Fleet) -> None:
    fleet.provision("east")
    gate = fleet.connected(fleet.start("east").settings.gate.gate)
    set_gate_policy(fleet, "east", temperature="required")
    wait_for(lambda: version(gate) == 1, 2.0)
    fleet.stop("east")
    fleet.broker.kill()
    gate = fleet.start("east")
    assert version(gate) == 1
    assert present(gate, issue(fleet.pass_key(), site=fleet.site)) is Reason.NO_TEMPERATURE


def test_lockdown_denies_visitors_within_1_s_and_residents_pass(fleet: Fleet) -> None:
    fleet.provision("east")
    gate = fleet.connected(fleet.start("east").settings.gate.gate)
    key = fleet.pass_key()
    visitor = issue(key, site=fleet.site, kind=HolderKind.VISITOR)
    resident = issue(key, site=fleet.site, kind=HolderKind.RESIDENT)
    assert present(gate, visitor) is Reason.OK
    started = time.monotonic()
    body = {"site": fleet.site, "mode": "residents_only", "reason": "outbreak"}
    order = fleet.api("POST", "/api/v1/lockdowns", json=body)
    wait_for(lambda: gate.agent.live_policy().lockdown is not None, 1.0, "lockdown applied")
    assert time.monotonic() - started < 1.0
    assert present(gate, visitor) is Reason.LOCKDOWN
    assert present(gate, resident) is Reason.OK
    wait_for(lambda: fleet.api("GET", "/api/v1/lockdowns")[0]["gates_pending"] == 0, 5)
    fleet.api("DELETE", f"/api/v1/lockdowns/{order['id']}")
    wait_for(lambda: gate.agent.live_policy().lockdown is None, 1.0, "lockdown lifted")
    assert present(gate, visitor) is Reason.OK
    audit = fleet.api("GET", "/api/v1/audit")
    actions = {a["action"] for a in (audit["items"] if isinstance(audit, dict) else audit)}
    assert {"lockdown.start", "lockdown.end"} <= actions


def test_a_gate_asks_for_its_policy_when_the_broker_lost_the_retained_copy(fleet: Fleet) -> None:
    fleet.provision("east")
    fleet.connected(fleet.start("east").settings.gate.gate)
    fleet.stop("east")
    set_gate_policy(fleet, "east", temperature="required")
    ingest = fleet.client.app.state.ingest  # type: ignore[attr-defined]
    fleet.broker.kill()  # persistence off: the retained document is gone with it
    wait_for(lambda: not ingest.connected.is_set(), 10, "central saw the broker go")
    fleet.broker.start()
    wait_for(ingest.connected.is_set, 30, "central reconnected")
    gate = fleet.connected(fleet.start("east").settings.gate.gate)
    wait_for(lambda: version(gate) == 1, 10, "policy sent on the gate's request")
    assert ingest.counts["policy_answers"] >= 1
