"""Re-issue (new id, old revoked) and per-gate revocation state, through a real central."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.publish as publish
from sqlalchemy import select

from central.auth import Role
from central.store import presence, sync_store
from central.store.tables import audit
from protocol.epass import parse_pass
from protocol.messages import GateState, GateStatus
from protocol.topics import GateTopic, gate_topic
from tests.integration.office_helpers import SHANGHAI, SITE, Office


def _reissue(office: Office, pass_id: str, **body: Any) -> Any:
    return office.http.post(f"/api/v1/passes/{pass_id}/reissue", json=body or None,
                            headers=office.as_(Role.ADMIN))  # fmt: skip


def test_reissue_gives_a_new_id_and_revokes_the_old_one(office: Office) -> None:
    old = office.issue(holder="冯十二", unit="R-1-101")
    r = _reissue(office, old["pass_id"], reason="card lost")
    assert r.status_code == 201, r.text
    new, replaced = r.json()["new"], r.json()["old"]
    assert (
        new["pass_id"] != old["pass_id"]
        and parse_pass(new["text"]).data.pass_id_hex == new["pass_id"]
    )
    assert (replaced["status"], replaced["revoke_reason"]) == ("revoked", "card lost")
    same = ("holder", "unit", "phone", "kind", "valid_from", "valid_until", "gates", "display_name")
    assert {k: new[k] for k in same} == {k: old[k] for k in same} and new["status"] == "active"
    with office.engine.connect() as conn:
        delta = sync_store.delta_since(conn, 0, 10_000)
        mine = select(audit).where(audit.c.action == "pass.reissue")
        line = conn.execute(mine.where(audit.c.target == old["pass_id"])).one()
    assert old["pass_id"] in {x.pass_id for x in delta.revoked}
    assert new["pass_id"] not in {x.pass_id for x in delta.revoked}
    assert line.details["new_pass"] == new["pass_id"] and line.actor == "admin"


def test_reissue_refusals(office: Office) -> None:
    past = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0) - timedelta(days=2)
    expired = office.issue(holder="陈十三", unit="R-2-101", valid_from=past.isoformat(),
                           valid_until=(past + timedelta(days=1)).isoformat())  # fmt: skip
    assert _reissue(office, expired["pass_id"]).status_code == 409
    assert _reissue(office, "00" * 8).status_code == 404
    active = office.issue(holder="褚十四", unit="R-2-102")
    guard = office.as_(Role.GUARD)
    url = f"/api/v1/passes/{active['pass_id']}/reissue"
    assert office.http.post(url, headers=guard).status_code == 403


def _report(office: Office, gate: str, cache_version: int) -> None:
    status = GateStatus(state=GateState.ONLINE, at=datetime.now(UTC), cache_version=cache_version)
    publish.single(gate_topic(SITE, gate, GateTopic.STATUS), status.model_dump_json(), qos=1,
                   retain=True, hostname="127.0.0.1", port=office.broker.port)  # fmt: skip


def _applied(office: Office, pass_id: str) -> dict[str, Any]:
    r = office.http.get(f"/api/v1/passes/{pass_id}/gates", headers=office.as_(Role.GUARD))
    assert r.status_code == 200, r.text
    state: dict[str, Any] = r.json()
    return state


def test_each_gate_shows_whether_it_has_applied_a_revocation(office: Office) -> None:
    with office.engine.begin() as conn:
        for gate in ("applied-east", "applied-west"):
            presence.register_gate(conn, SITE, gate, datetime.now(UTC))
    issued = office.issue(holder="卫十五", unit="R-3-101")
    before = _applied(office, issued["pass_id"])
    assert not before["revoked"] and {g["applied"] for g in before["gates"]} == {None}
    office.http.post(f"/api/v1/passes/{issued['pass_id']}/revoke", json={"reason": "lost"},
                     headers=office.as_(Role.ADMIN)).raise_for_status()  # fmt: skip
    version = _applied(office, issued["pass_id"])["version"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        # As gates do, every so often: central's list of known gates is refreshed once a second,
        # so a status sent right after the gates were registered may be refused once.
        _report(office, "applied-east", version)
        _report(office, "applied-west", version - 1)
        time.sleep(0.5)
        gates = {g["gate"]: g for g in _applied(office, issued["pass_id"])["gates"]}
        if gates["applied-east"]["applied"] and gates["applied-west"]["cache_version"] is not None:
            break
    assert gates["applied-east"]["applied"] is True and gates["applied-east"]["online"]
    assert gates["applied-west"]["applied"] is False
    assert gates["applied-west"]["cache_version"] == version - 1
