"""Key rotation end to end, emergency release and a guard's offline lockdown (issue #11)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from central.store.tables import events
from edge.assemble import Gate
from edge.decide import Reason
from edge.devices.sim_serial import LcusRelaySim
from edge.gate import DeviceFactories
from protocol.epass import HolderKind
from tests.integration.agent_helpers import issue, wait_for
from tests.integration.fleet_helpers import Fleet, fleet_central
from tests.integration.services import Mosquitto
from tests.integration.stack import MENJIN


@pytest.fixture
def fleet(tmp_path: Path, live_broker: Mosquitto) -> Iterator[Fleet]:
    with fleet_central(tmp_path, live_broker) as f:
        yield f


def present(gate: Gate, text: str) -> Reason:
    return gate.agent.present(text)[0].reason


def trusts(gate: Gate, key_id: str) -> bool:
    return bytes.fromhex(key_id) in gate.agent.live_policy().trusted


def issued(fleet: Fleet, kind: str = "resident") -> dict[str, str]:
    body = {"site": fleet.site, "holder": "王小明", "kind": kind,
            "valid_from": "2026-01-01T00:00", "valid_until": "2036-01-01T00:00"}  # fmt: skip
    out: dict[str, str] = fleet.api("POST", "/api/v1/passes", json=body)
    return out


def test_key_rotation_next_activate_retire_with_passes_of_both_keys(fleet: Fleet) -> None:
    fleet.provision("east")
    gate = fleet.connected(fleet.start("east").settings.gate.gate)
    old = issued(fleet)
    old_key = old["key_id"]
    # next: gates trust the new key; central still signs with the old one.
    new_key = fleet.api("POST", "/api/v1/keys", json={"purpose": "pass"})["key_id"]
    wait_for(lambda: trusts(gate, new_key), 2.0, "next key trusted")
    by_new = issue(fleet.key(new_key), site=fleet.site)
    assert (present(gate, old["text"]), present(gate, by_new)) == (Reason.OK, Reason.OK)
    second = issued(fleet)
    assert second["key_id"] == old_key
    # activate: central signs with the new key; the old one stays trusted (previous).
    fleet.api("POST", f"/api/v1/keys/{new_key}/activate")
    fresh = issued(fleet)
    assert fresh["key_id"] == new_key
    assert (present(gate, old["text"]), present(gate, fresh["text"])) == (Reason.OK, Reason.OK)
    # The guided re-issue: the old key's active passes, re-signed with the new one.
    listed = fleet.api("GET", f"/api/v1/keys/{old_key}/passes")
    assert {p["pass_id"] for p in listed} == {old["pass_id"], second["pass_id"]}
    report = fleet.api("POST", f"/api/v1/keys/{old_key}/reissue")
    again = next(p for p in report["reissued"] if p["old_pass_id"] == old["pass_id"])
    assert (len(report["reissued"]), report["signed_with"]) == (2, new_key)
    assert fleet.api("GET", f"/api/v1/keys/{old_key}/passes") == []
    # retire: the old key's passes are denied unknown_key; the new key's pass.
    fleet.api("POST", f"/api/v1/keys/{old_key}/retire")
    wait_for(lambda: not trusts(gate, old_key), 2.0, "old key retired")
    assert present(gate, by_new) is Reason.OK
    assert present(gate, again["text"]) is Reason.OK
    unsynced = issue(fleet.key(old_key), site=fleet.site)  # not even revoked: just untrusted
    assert present(gate, unsynced) is Reason.UNKNOWN_KEY
    r = fleet.client.post(f"/api/v1/keys/{new_key}/retire", headers=fleet.admin)
    assert r.status_code == 409  # the active key cannot be retired


def test_policy_key_rotation_is_announced_under_the_old_key(fleet: Fleet) -> None:
    fleet.provision("east")
    gate = fleet.connected(fleet.start("east").settings.gate.gate)
    keys = fleet.api("GET", "/api/v1/keys")
    [old] = [k["key_id"] for k in keys if k["purpose"] == "policy"]
    new = fleet.api("POST", "/api/v1/keys", json={"purpose": "policy"})["key_id"]
    wait_for(lambda: set(gate.agent.policy.pinned()) == {old, new}, 2.0, "new policy key pinned")
    fleet.api("POST", f"/api/v1/keys/{new}/activate")
    fleet.api("POST", f"/api/v1/keys/{old}/retire")  # signed by the new key: the gate takes it
    wait_for(lambda: set(gate.agent.policy.pinned()) == {new}, 2.0, "old policy key unpinned")
    body = {"temperature": "required"}
    fleet.api("PUT", f"/api/v1/gates/{fleet.gate_ids['east']}/policy", json=body)
    wait_for(lambda: gate.agent.live_policy().temperature.value == "required", 2.0)


def test_emergency_release_holds_the_relay_until_ended(fleet: Fleet, tmp_path: Path) -> None:
    relay = LcusRelaySim(tmp_path).start()
    try:
        section = {"kind": "lcus", "port": relay.path, "channel": 1, "pulse_ms": 100}
        fleet.provision("east", relay=section)
        gate = fleet.connected(fleet.start("east").settings.gate.gate)
        body = {"site": fleet.site, "reason": "fire alarm"}
        order = fleet.api("POST", "/api/v1/releases", json=body)
        wait_for(lambda: relay.is_on(1), 2.0, "relay held open")
        present(gate, issue(fleet.pass_key(), site=fleet.site))  # a grant must not close it
        assert relay.is_on(1)
        assert gate.agent.remote_open() is True  # a remote open neither: the door stands open
        time.sleep(0.3)  # a pulse of 100 ms would have switched the relay off by now
        assert relay.is_on(1)
        fleet.api("DELETE", f"/api/v1/releases/{order['id']}")
        wait_for(lambda: not relay.is_on(1), 2.0, "relay released")
    finally:
        fleet.close()
        relay.stop()


def menjin_gate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MENJIN, "gate", *args], capture_output=True, text=True, timeout=60)


def test_local_lockdown_offline_is_applied_and_reported_after_reconnect(fleet: Fleet) -> None:
    config = fleet.provision("east")
    fleet.connected(fleet.start("east").settings.gate.gate)
    fleet.stop("east")
    fleet.broker.kill()
    gate = fleet.start("east", DeviceFactories())
    visitor = issue(fleet.pass_key(), site=fleet.site, kind=HolderKind.VISITOR)
    assert present(gate, visitor) is Reason.OK
    done = menjin_gate("lockdown", "on", "--config", str(config), "--mode", "full")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: gate.agent.live_policy().lockdown is not None, 1.0, "local lockdown")
    assert present(gate, visitor) is Reason.LOCKDOWN
    assert menjin_gate("lockdown", "off", "--config", str(config)).returncode == 0
    wait_for(lambda: gate.agent.live_policy().lockdown is None, 1.0, "local lockdown ended")
    fleet.broker.start()
    fleet.connected("east")

    def reported() -> list[bool | None]:
        with fleet.client.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
            query = select(events.c.granted).where(
                events.c.site == fleet.site, events.c.type == "lockdown"
            )
            return [r.granted for r in conn.execute(query.order_by(events.c.seq))]

    wait_for(lambda: reported() == [True, False], 30, "local lockdown reported to central")
