"""The passes API on a real SQLite store: issue, search, revoke, QR images, CSV import."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from central.app import create_app
from central.auth import Role
from central.store import sync_store
from central.store.tables import revocations
from edge.cache import GateCache
from edge.decide import GateContext, Reason, decide
from edge.devices.qr_decode import decode_frame
from protocol.epass import parse_pass, signature_valid
from protocol.keyfiles import load_public_key
from protocol.messages import SyncAnnouncement
from protocol.topics import sync_topic
from tests.integration.agent_helpers import wait_for
from tests.integration.api_helpers import Api, central_settings, make_users
from tests.integration.services import Mosquitto

URL = "/api/v1/passes"
SHANGHAI = ZoneInfo("Asia/Shanghai")
HEADER = "site,holder,kind,valid_from,valid_until,gates,hours,days,max_uses,unit,phone\n"


def body(**changes: Any) -> dict[str, Any]:
    now = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
    base = {
        "site": "hutong-12",
        "holder": "张三华",
        "kind": "resident",
        "valid_from": (now - timedelta(hours=1)).isoformat(),  # naive: Asia/Shanghai
        "valid_until": (now + timedelta(days=30)).isoformat(),
        "gates": ["east"],
        "unit": "3-2-501",
        "phone": "13812345678",
    }
    return {**base, **changes}


def issue(api: Api, **changes: Any) -> dict[str, Any]:
    r = api.client.post(URL, json=body(**changes), headers=api.as_(Role.ADMIN))
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def gate_context(api: Api, gate: str = "east") -> GateContext:
    trusted = load_public_key(api.settings.signing_dir())
    key = trusted.verify_key()
    return GateContext(site="hutong-12", gate=gate, trusted={bytes.fromhex(trusted.key_id): key})


def import_csv(api: Api, data: bytes, role: Role = Role.ADMIN) -> Any:
    files = {"file": ("passes.csv", data, "text/csv")}
    return api.client.post(f"{URL}/import", files=files, headers=api.as_(role))


def test_issued_pass_verifies_and_the_gate_grants_it(api: Api, tmp_path: Path) -> None:
    issued = issue(api)
    assert issued["status"] == "active"
    assert issued["qr_url"] == f"{URL}/{issued['pass_id']}/qr.png"
    assert issued["holder"] == "张三华" and issued["display_name"] == "张*华"
    signed = parse_pass(issued["text"])
    assert signed.data.display_name == "张*华" and "三" not in signed.data.display_name
    assert signed.data.pass_id_hex == issued["pass_id"]
    ctx = gate_context(api)
    assert signature_valid(signed, ctx.trusted[signed.key_id])
    cache = GateCache(tmp_path / "gate.db")
    try:
        decision = decide(issued["text"], ctx, cache, datetime.now(UTC))
        assert decision.reason is Reason.OK, decision
        wrong_gate = decide(issued["text"], gate_context(api, "west"), cache, datetime.now(UTC))
        assert wrong_gate.reason is Reason.WRONG_GATE
    finally:
        cache.close()


def test_naive_times_are_shanghai_and_offsets_are_honoured(api: Api) -> None:
    naive = issue(api, valid_from="2030-01-01T08:00:00", valid_until="2030-01-02T08:00:00")
    assert naive["valid_from"] == "2030-01-01T00:00:00Z"
    offset = issue(api, valid_from="2030-01-01T08:00:00+00:00", valid_until="2030-01-02T00:00Z")
    assert offset["valid_from"] == "2030-01-01T08:00:00Z"
    assert parse_pass(naive["text"]).data.valid_from == 1893456000


def test_hours_and_days_are_normalised_and_signed(api: Api) -> None:
    issued = issue(api, hours="7:00-22:30", days="mon-fri", max_uses=3)
    assert (issued["hours"], issued["days"]) == ("07:00-22:30", "mon,tue,wed,thu,fri")
    data = parse_pass(issued["text"]).data
    assert (data.hours, data.weekdays, data.max_uses) == ((420, 1350), 0b11111, 3)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"kind": "landlord"}, "kind", "resident"),
        ({"valid_until": "2020-01-01T00:00:00"}, "valid_until", "after valid_from"),
        ({"valid_from": "tomorrow"}, "valid_from", "ISO 8601"),
        ({"hours": "25:00-26:00"}, "hours", "HH:MM-HH:MM"),
        ({"days": "mon,funday"}, "days", "unknown weekday"),
        ({"holder": "13812345678"}, "holder", "phone or ID"),
        ({"max_uses": 70000}, "max_uses", "65535"),
        ({"site": "a/b"}, "site", "letters"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    api: Api, changes: dict[str, Any], field: str, words: str
) -> None:
    r = api.client.post(URL, json=body(**changes), headers=api.as_(Role.ADMIN))
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"][-1] == field and words in error["msg"], error


def test_a_pass_too_large_for_a_qr_code_is_422(api: Api) -> None:
    gates = [f"gate-{i:02d}-{'x' * 40}" for i in range(32)]
    r = api.client.post(URL, json=body(gates=gates), headers=api.as_(Role.ADMIN))
    assert r.status_code == 422
    assert "version 10 QR" in r.json()["detail"][0]["msg"]


def test_only_admins_issue(api: Api) -> None:
    for role in (Role.GUARD, Role.VIEWER):
        assert api.client.post(URL, json=body(), headers=api.as_(role)).status_code == 403
    assert api.client.post(URL, json=body()).status_code == 401


def test_phone_is_for_admins_only(api: Api) -> None:
    pass_id = issue(api)["pass_id"]
    for role, phone in ((Role.ADMIN, "13812345678"), (Role.GUARD, None), (Role.VIEWER, None)):
        shown = api.client.get(f"{URL}/{pass_id}", headers=api.as_(role)).json()
        assert shown["phone"] == phone
        listed = api.client.get(URL, headers=api.as_(role)).json()["items"][0]
        assert listed["phone"] == phone
    assert api.client.get(f"{URL}/{'0' * 16}", headers=api.as_(Role.GUARD)).status_code == 404


def test_search_filters_and_cursor_pagination(api: Api) -> None:
    ids = [issue(api, holder=f"王{i}明", unit=f"{i}-1-101")["pass_id"] for i in range(5)]
    ids.append(issue(api, holder="Li Lei", kind="visitor")["pass_id"])
    ids.append(issue(api, holder="Old Visitor", valid_from="2020-01-01T00:00",
                     valid_until="2020-02-01T00:00")["pass_id"])  # fmt: skip
    seen: list[str] = []
    cursor = None
    for expected in (3, 3, 1):
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.client.get(URL, params=params, headers=api.as_(Role.VIEWER)).json()
        assert len(page["items"]) == expected
        seen += [p["pass_id"] for p in page["items"]]
        cursor = page["next_cursor"]
    assert cursor is None
    assert seen == ids[::-1]  # newest first, each pass exactly once

    def found(role: Role = Role.ADMIN, **params: Any) -> list[str]:
        r = api.client.get(URL, params=params, headers=api.as_(role))
        assert r.status_code == 200, r.text
        return [p["pass_id"] for p in r.json()["items"]]

    # A search must not reveal what the role may not see: the full name, or a viewer the unit.
    assert found(Role.GUARD, q="王3") == [] and found(Role.GUARD, q="4-1-101") == [ids[4]]
    assert found(Role.VIEWER, q="4-1-101") == [] and found(Role.VIEWER, q="王*") != []
    assert api.client.get(URL, params={"kind": "visitor"},
                          headers=api.as_(Role.VIEWER)).status_code == 403  # fmt: skip

    assert found(q="王3") == [ids[3]]
    assert found(q="4-1-101") == [ids[4]]
    assert found(q=ids[2][:6]) == [ids[2]]
    assert found(q="li l") == [ids[5]]
    assert found(kind="visitor", status="active") == [ids[5]]
    assert found(status="expired") == [ids[6]]
    assert found(site="elsewhere") == []
    bad = api.client.get(URL, params={"cursor": "!!"}, headers=api.as_(Role.GUARD))
    assert bad.status_code == 422


def test_revoke_records_bumps_the_version_and_reaches_the_gate(api: Api, tmp_path: Path) -> None:
    issued = issue(api)
    pid = issued["pass_id"]
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        before = sync_store.current_version(conn)
    reason = {"reason": "moved out"}
    assert api.client.post(f"{URL}/{pid}/revoke", json=reason,
                           headers=api.as_(Role.GUARD)).status_code == 403  # fmt: skip
    r = api.client.post(f"{URL}/{pid}/revoke", json=reason, headers=api.as_(Role.ADMIN))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["revoke_reason"]) == ("revoked", "moved out")
    with engine.connect() as conn:
        row = conn.execute(revocations.select().where(revocations.c.pass_id == pid)).one()
        delta = sync_store.delta_since(conn, before, 100)
    assert row.version == before + 1 and row.revoked_by == "admin"
    assert row.until == parse_pass(issued["text"]).data.valid_until
    audit = api.client.get("/api/v1/audit", headers=api.as_(Role.ADMIN)).json()[0]
    assert (audit["action"], audit["target"], audit["actor"]) == ("pass.revoke", pid, "admin")

    cache = GateCache(tmp_path / "gate.db")
    try:
        revoked: list[tuple[str, str, float | None]] = [
            (x.pass_id, x.reason, x.until) for x in delta.revoked
        ]
        cache.apply_delta(delta.version, delta.snapshot, revoked, delta.unrevoked)
        decision = decide(issued["text"], gate_context(api), cache, datetime.now(UTC))
        assert decision.reason is Reason.REVOKED
    finally:
        cache.close()

    again = api.client.post(f"{URL}/{pid}/revoke", json=reason, headers=api.as_(Role.ADMIN))
    assert again.json()["status"] == "revoked"
    listed = api.client.get(URL, params={"status": "revoked"}, headers=api.as_(Role.GUARD))
    assert [p["pass_id"] for p in listed.json()["items"]] == [pid]
    missing = api.client.post(f"{URL}/{'0' * 16}/revoke", json=reason, headers=api.as_(Role.ADMIN))
    assert missing.status_code == 404


def test_revoke_is_announced_to_the_site_after_commit(
    tmp_path: Path, live_broker: Mosquitto
) -> None:
    heard: list[int] = []
    subscribed = threading.Event()
    listener = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.on_message = lambda _c, _u, m: heard.append(
        SyncAnnouncement.model_validate_json(m.payload).version
    )
    listener.connect("127.0.0.1", live_broker.port)
    listener.subscribe(sync_topic("hutong-12"), qos=1)
    listener.loop_start()
    settings = central_settings(tmp_path, live_broker.url)
    app = create_app(settings)
    try:
        assert subscribed.wait(10.0)
        with TestClient(app) as client:
            api = Api(client, make_users(client), settings)
            pid = issue(api)["pass_id"]
            r = client.post(f"{URL}/{pid}/revoke", json={"reason": "lost"},
                            headers=api.as_(Role.ADMIN))  # fmt: skip
            assert r.status_code == 200, r.text
            wait_for(lambda: heard, 10.0, "the sync announcement")
            with app.state.engine.connect() as conn:
                assert heard == [sync_store.current_version(conn)]
    finally:
        listener.loop_stop()
        listener.disconnect()


def test_issue_is_audited(api: Api) -> None:
    pid = issue(api)["pass_id"]
    audit = api.client.get("/api/v1/audit", headers=api.as_(Role.ADMIN)).json()[0]
    assert (audit["action"], audit["target"]) == ("pass.issue", pid)


def test_qr_images_hold_the_pass_text(api: Api) -> None:
    issued = issue(api)
    png = api.client.get(issued["qr_url"], headers=api.as_(Role.ADMIN))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR)
    assert decode_frame(image) == issued["text"]
    svg = api.client.get(f"{URL}/{issued['pass_id']}/qr.svg", headers=api.as_(Role.ADMIN))
    assert svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content
    assert (
        api.client.get(f"{URL}/{'0' * 16}/qr.png", headers=api.as_(Role.ADMIN)).status_code == 404
    )


def test_csv_import_reports_bad_rows_and_imports_good_ones(api: Api) -> None:
    csv_text = HEADER + (
        "hutong-12,赵六,resident,2030-01-01T08:00,2030-06-01,east;west,,,,1-1-101,\n"
        "hutong-12,钱七,visitor,2030-13-01,2030-06-01,,,,,,\n"
        "hutong-12,孙八,landlord,2030-01-01,2030-06-01,,,,,,\n"
        "hutong-12,13812345678,staff,2030-01-01,2030-06-01,,,,,,\n"
        ",周九,tenant,2030-01-01,2030-06-01,,,,,,\n"
        ",,,,,,,,,,\n"
        "hutong-12,吴十,tenant,2030/1/1 8:00,2030/6/1 8:00,north|south,07:00-22:00,mon-fri,2,,\n"
    )
    r = import_csv(api, csv_text.encode())
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["imported"] == 2
    errors = {(e["row"], e["field"]): e["message"] for e in report["errors"]}
    assert set(errors) == {(3, "valid_from"), (4, "kind"), (5, "holder"), (6, "site")}
    assert "ISO 8601" in errors[3, "valid_from"] and "phone" in errors[5, "holder"]
    assert errors[6, "site"] == "Field required"
    first, last = (api.client.get(f"{URL}/{p}", headers=api.as_(Role.ADMIN)).json()
                   for p in report["passes"])  # fmt: skip
    assert (first["holder"], first["gates"]) == ("赵六", ["east", "west"])
    assert (last["gates"], last["hours"], last["days"]) == (["north", "south"], "07:00-22:00",
                                                             "mon,tue,wed,thu,fri")  # fmt: skip
    assert last["valid_from"] == "2030-01-01T00:00:00Z"  # Excel's display format, Shanghai time
    entries = api.client.get("/api/v1/audit", headers=api.as_(Role.ADMIN)).json()
    audit = next(a for a in entries if a["action"] == "pass.import")
    assert audit["details"]["imported"] == 2


def test_csv_import_reads_gbk_as_saved_by_chinese_excel(api: Api) -> None:
    data = (HEADER + "hutong-12,欧阳娜娜,resident,2030-01-01,2030-06-01,,,,,3栋,\n").encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    report = import_csv(api, data).json()
    assert report["imported"] == 1, report
    shown = api.client.get(f"{URL}/{report['passes'][0]}", headers=api.as_(Role.ADMIN)).json()
    assert (shown["holder"], shown["display_name"], shown["unit"]) == ("欧阳娜娜", "欧**娜", "3栋")


def test_csv_import_with_a_bom_as_a_raw_body(api: Api) -> None:
    data = (HEADER + "hutong-12,张三,resident,2030-01-01,2030-06-01,,,,,,\n").encode("utf-8-sig")
    headers = {**api.as_(Role.ADMIN), "Content-Type": "text/csv; charset=utf-8"}
    r = api.client.post(f"{URL}/import", content=data, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["imported"], r.json()["errors"]) == (1, [])


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("site,holder,kind,valid_from\n", "valid_until"),
        ("site,holder,kind,valid_from,valid_until,phnoe\n", "phnoe"),
        ("", "empty"),
    ],
)
def test_csv_import_rejects_a_bad_header(api: Api, header: str, words: str) -> None:
    r = import_csv(api, (header + "hutong-12,张三,resident,2030-01-01\n" * bool(header)).encode())
    assert r.status_code == 422
    assert words in r.json()["detail"]
    assert api.client.get(URL, headers=api.as_(Role.ADMIN)).json()["items"] == []


def test_csv_import_refuses_other_bodies(api: Api) -> None:
    form = {**api.as_(Role.ADMIN), "Content-Type": "application/x-www-form-urlencoded"}
    r = api.client.post(f"{URL}/import", content=b"site=a", headers=form)
    assert r.status_code == 415
    no_file = api.client.post(f"{URL}/import", files={"other": ("a.csv", b"x")},
                              headers=api.as_(Role.ADMIN))  # fmt: skip
    assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]


def test_csv_import_limits_and_roles(api: Api) -> None:
    row = "hutong-12,张三,resident,2030-01-01,2030-06-01,,,,,,\n"
    assert import_csv(api, (HEADER + row).encode(), Role.GUARD).status_code == 403
    too_big = import_csv(api, (HEADER + row * 120_000).encode())
    assert too_big.status_code == 413 and "bytes" in too_big.json()["detail"]
    too_many = import_csv(api, (HEADER + "\n".join([row.strip()] * 10_001)).encode())
    assert too_many.status_code == 413 and "10000 rows" in too_many.json()["detail"]
