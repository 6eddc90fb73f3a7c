"""Enrolment links on a real SQLite store: issue device-bound, enrol once, gate decides."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from central.auth import Role
from edge.decide import GateContext, Reason, decide
from protocol.epass import parse_pass
from protocol.keyfiles import load_public_key
from protocol.livecode import DeviceAlg, slot_of
from tests.integration.api_helpers import Api
from tests.unit.decide_helpers import MemoryCache
from tests.unit.livecode_helpers import Phone, ed25519_phone, p256_phone

SHANGHAI = ZoneInfo("Asia/Shanghai")


def issue(api: Api, **changes: Any) -> dict[str, Any]:
    now = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
    body = {
        "site": "hutong-12", "holder": "张三华", "kind": "resident", "unit": "3号楼2单元501",
        "valid_from": (now - timedelta(days=1)).isoformat(),
        "valid_until": (now + timedelta(days=30)).isoformat(), "device_bound": True, **changes,
    }  # fmt: skip
    r = api.client.post("/api/v1/passes", json=body, headers=api.as_(Role.ADMIN))
    assert r.status_code == 201, r.text
    return dict(r.json())


def key_body(phone: Phone) -> dict[str, str]:
    raw = phone.device.public
    return {
        "alg": phone.device.alg.value,
        "public_key": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def token_of(url: str) -> str:
    assert "/phone/enrol/" in url
    return url.rsplit("/", 1)[1]


def test_enrol_once_then_the_gate_grants_the_live_code(api: Api) -> None:
    issued = issue(api)
    assert issued["text"] == "" and issued["enrol_url"]
    token = token_of(issued["enrol_url"])
    assert api.client.get(f"/api/v1/enrol/{token}").json()["state"] == "open"
    phone = ed25519_phone()
    r = api.client.post(f"/api/v1/enrol/{token}", json=key_body(phone))
    assert r.status_code == 201, r.text
    enrolled = r.json()
    assert enrolled["unit"] == "3号楼2单元501" and enrolled["display_name"] == "张*华"
    assert "holder" not in enrolled and "张三华" not in r.text
    again = api.client.post(f"/api/v1/enrol/{token}", json=key_body(p256_phone()))
    assert again.status_code == 410
    assert api.client.get(f"/api/v1/enrol/{token}").json()["state"] == "used"

    key = load_public_key(api.settings.signing_dir())
    signed = parse_pass(enrolled["text"])
    ctx = GateContext(site="hutong-12", gate="east", trusted={signed.key_id: key.verify_key()})
    now = datetime.now(UTC)
    live = phone.live(enrolled["text"], signed.data.pass_id, slot_of(now.timestamp()))
    assert decide(live, ctx, MemoryCache(), now).reason is Reason.OK
    assert decide(enrolled["text"], ctx, MemoryCache(), now).reason is Reason.NO_LIVE_CODE
    shown = api.client.get(f"/api/v1/passes/{issued['pass_id']}", headers=api.as_(Role.ADMIN))
    assert shown.json()["text"] == enrolled["text"] and "enrol_url" not in shown.json()


def test_p256_phone_enrols(api: Api) -> None:
    token = token_of(issue(api, kind="visitor", hours="08:00-20:00", max_uses=3)["enrol_url"])
    r = api.client.post(f"/api/v1/enrol/{token}", json=key_body(p256_phone()))
    assert r.status_code == 201, r.text
    device = parse_pass(r.json()["text"]).device
    assert device is not None and device.alg is DeviceAlg.P256


def test_bad_keys_unknown_revoked_and_renewed_links(api: Api) -> None:
    issued = issue(api)
    token = token_of(issued["enrol_url"])
    bad = {
        "alg": "p256",
        "public_key": base64.urlsafe_b64encode(b"\x02" + b"\xff" * 32).decode().rstrip("="),
    }
    assert api.client.post(f"/api/v1/enrol/{token}", json=bad).status_code == 422
    assert (
        api.client.post("/api/v1/enrol/" + "x" * 32, json=key_body(ed25519_phone())).status_code
        == 404
    )
    admin = api.as_(Role.ADMIN)
    link_url = f"/api/v1/passes/{issued['pass_id']}/enrol-link"
    assert api.client.delete(link_url, headers=admin).json() == {"revoked": 1}
    assert (
        api.client.post(f"/api/v1/enrol/{token}", json=key_body(ed25519_phone())).status_code == 410
    )
    fresh = api.client.post(link_url, headers=admin)
    assert fresh.status_code == 201
    new_token = token_of(fresh.json()["enrol_url"])
    assert (
        api.client.post(f"/api/v1/enrol/{new_token}", json=key_body(ed25519_phone())).status_code
        == 201
    )
    assert api.client.post(link_url, headers=admin).status_code == 409  # enrolled already
    qr = api.client.get(f"/api/v1/passes/{issue(api)['pass_id']}/qr.png", headers=admin)
    assert qr.status_code == 409  # no text until a phone enrols


def test_revoked_pass_cannot_enrol(api: Api) -> None:
    issued = issue(api)
    admin = api.as_(Role.ADMIN)
    api.client.post(
        f"/api/v1/passes/{issued['pass_id']}/revoke", json={"reason": "lost"}, headers=admin
    )
    token = token_of(issued["enrol_url"])
    assert api.client.get(f"/api/v1/enrol/{token}").json()["state"] == "revoked"
    assert (
        api.client.post(f"/api/v1/enrol/{token}", json=key_body(ed25519_phone())).status_code == 410
    )


def test_too_large_for_a_live_code_is_refused_at_issue(api: Api) -> None:
    now = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
    r = api.client.post("/api/v1/passes", headers=api.as_(Role.ADMIN), json={
        "site": "hutong-12", "holder": "欧阳明明明", "kind": "visitor", "device_bound": True,
        "valid_from": now.isoformat(), "valid_until": (now + timedelta(days=1)).isoformat(),
        "gates": ["east", "west", "north"], "hours": "08:00-20:00", "days": "mon-fri",
        "max_uses": 3,
    })  # fmt: skip
    assert r.status_code == 422 and "live code" in r.text


def test_server_time(api: Api) -> None:
    r = api.client.get("/api/v1/time")
    assert abs(r.json()["unix_ms"] / 1000 - datetime.now(UTC).timestamp()) < 5
    assert r.headers["cache-control"] == "no-store"
