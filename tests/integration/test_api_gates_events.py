"""Gates, events and alerts through the API (in-process app, SQLite file)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from central.auth import Role
from central.store import ingest_store, presence
from central.store.db import insert_ignore
from central.store.tables import snapshots
from edge.config import load_gate_settings
from protocol.live import alert_kind
from protocol.messages import EventBatch, EventType, GateEvent
from tests.integration.api_helpers import Api


def store_events(api: Api, site: str, gate: str, events: list[GateEvent]) -> None:
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        presence.register_gate(conn, site, gate, now)
        result = ingest_store.StoreResult()
        ingest_store.store_batch(conn, EventBatch(site=site, gate=gate, events=events), now, result)
        for event_id, s, g, ev in result.inserted:
            kind = alert_kind(ev)
            if kind:
                presence.open_alert(conn, s, g, kind, now, event_id=event_id)


def ev(seq: int, **kw: object) -> GateEvent:
    base: dict[str, object] = {
        "epoch": 1, "seq": seq, "type": EventType.DECISION, "granted": True, "reason": "ok",
        "at": datetime(2026, 12, 2, 9, 0, tzinfo=UTC) + timedelta(minutes=seq),
    }  # fmt: skip
    return GateEvent.model_validate(base | kw)


def test_provisioned_config_is_accepted_by_the_gate(api: Api, tmp_path: Path) -> None:
    r = api.client.post(
        "/api/v1/gates",
        json={"site": "hutong-12", "gate": "east", "direction": "in", "temperature": "required"},
        headers=api.as_(Role.ADMIN),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    config = tmp_path / "east.toml"
    config.write_text(body["config_toml"])
    settings = load_gate_settings(config)
    assert (settings.gate.site, settings.gate.direction.value) == ("hutong-12", "in")
    assert settings.mqtt.username == body["broker"]["username"] == "gate/hutong-12/east"
    assert settings.mqtt.password == body["broker"]["password"]
    assert body["broker"]["password_file_line"].startswith("gate/hutong-12/east:$7$101$")
    assert "topic write menjin/v1/hutong-12/east/events" in body["broker"]["acl"]
    assert len(settings.keys.trusted) == 1
    again = api.client.post("/api/v1/gates", json={"site": "hutong-12", "gate": "east"},
                            headers=api.as_(Role.ADMIN))  # fmt: skip
    assert again.status_code == 409
    [gate] = api.client.get("/api/v1/gates", headers=api.as_(Role.VIEWER)).json()
    assert (gate["site"], gate["gate"], gate["online"]) == ("hutong-12", "east", False)


def test_bad_gate_fields_are_422(api: Api) -> None:
    for body in ({"site": "a/b", "gate": "g"}, {"site": "a.b", "gate": "g"},
                 {"site": "s", "gate": "g.1"}, {"site": "s", "gate": "g", "timezone": "Mars/X"},
                 {"site": "s", "gate": "g", "direction": "sideways"}):  # fmt: skip
        r = api.client.post("/api/v1/gates", json=body, headers=api.as_(Role.ADMIN))
        assert r.status_code == 422, body


def test_remote_open_without_broker_is_503(api: Api) -> None:
    api.client.post("/api/v1/gates", json={"site": "s", "gate": "g"}, headers=api.as_(Role.ADMIN))
    r = api.client.post("/api/v1/gates/1/open", json={}, headers=api.as_(Role.GUARD))
    assert r.status_code == 503
    assert api.client.post("/api/v1/gates/99/open", json={},
                           headers=api.as_(Role.GUARD)).status_code == 404  # fmt: skip


def test_events_filter_page_and_csv(api: Api) -> None:
    store_events(api, "s1", "east", [ev(i, pass_id=f"{i % 2:016x}") for i in range(1, 8)])
    store_events(api, "s1", "west", [ev(1, granted=False, reason="expired")])
    c, h = api.client, api.as_(Role.VIEWER)
    page = c.get("/api/v1/events", params={"gate": "east", "limit": 3}, headers=h).json()
    assert [e["seq"] for e in page["items"]] == [7, 6, 5]
    params = {"gate": "east", "limit": 3, "cursor": page["next_cursor"]}
    nxt = c.get("/api/v1/events", params=params, headers=h).json()
    assert [e["seq"] for e in nxt["items"]] == [4, 3, 2]
    by_pass = c.get("/api/v1/events", params={"pass_id": f"{1:016x}"}, headers=h).json()
    assert {e["seq"] for e in by_pass["items"]} == {1, 3, 5, 7}
    since = c.get("/api/v1/events", params={"since": "2026-12-02T17:05:00+08:00"},
                  headers=h).json()  # fmt: skip
    assert {e["seq"] for e in since["items"]} == {5, 6, 7}
    item = page["items"][0]
    assert datetime.fromisoformat(item["at"]) == datetime(2026, 12, 2, 9, 7, tzinfo=UTC)
    assert set(item) >= {"event_id", "site", "gate", "seq", "type", "at", "received_at", "reason",
                         "pass_id", "temperature_c", "clock_skew_s", "snapshot_url"}  # fmt: skip
    text = c.get("/api/v1/events.csv", params={"site": "s1"}, headers=h).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 8
    assert {r["gate"] for r in rows} == {"east", "west"}
    assert c.get("/api/v1/events", params={"cursor": "x"}, headers=h).status_code == 422


def test_snapshot_of_an_event(api: Api) -> None:
    store_events(api, "s1", "east", [ev(1, type=EventType.DOOR_FORCED, snapshot="a.jpg")])
    c, h = api.client, api.as_(Role.GUARD)
    [item] = c.get("/api/v1/events", headers=h).json()["items"]
    assert c.get(item["snapshot_url"], headers=h).status_code == 404  # not uploaded yet
    engine = c.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(insert_ignore(conn.dialect.name, snapshots).values(
            site="s1", gate="east", name="a.jpg", epoch=1, seq=1, jpeg=b"\xff\xd8x\xff\xd9",
            received_at=datetime.now(UTC)))  # fmt: skip
    r = c.get(item["snapshot_url"], headers=h)
    assert (r.status_code, r.headers["content-type"]) == (200, "image/jpeg")
    assert r.content == b"\xff\xd8x\xff\xd9"


def test_alerts_stay_open_until_acted_on(api: Api) -> None:
    store_events(api, "s1", "east", [
        ev(1, type=EventType.DOOR_FORCED),
        ev(2, granted=False, reason="fever", temperature_c=38.5, details={"flags": ["fever"]}),
    ])  # fmt: skip
    c = api.client
    open_ = c.get("/api/v1/alerts", headers=api.as_(Role.VIEWER)).json()
    assert sorted(a["kind"] for a in open_) == ["door_forced", "fever"]
    fever = next(a for a in open_ if a["kind"] == "fever")
    assert c.post(f"/api/v1/alerts/{fever['id']}/ack", json={"note": "x"},
                  headers=api.as_(Role.VIEWER)).status_code == 403  # fmt: skip
    r = c.post(f"/api/v1/alerts/{fever['id']}/ack", json={"note": "on my way"},
               headers=api.as_(Role.GUARD))  # fmt: skip
    assert (r.json()["state"], r.json()["acked_by"]) == ("acked", "guard")
    assert len(c.get("/api/v1/alerts", headers=api.as_(Role.GUARD)).json()) == 2
    r = c.post(f"/api/v1/alerts/{fever['id']}/resolve", json={"note": "sent home"},
               headers=api.as_(Role.GUARD))  # fmt: skip
    assert r.json()["state"] == "resolved"
    assert c.post(f"/api/v1/alerts/{fever['id']}/ack", json={},
                  headers=api.as_(Role.GUARD)).status_code == 409  # fmt: skip
    left = c.get("/api/v1/alerts", headers=api.as_(Role.GUARD)).json()
    assert [a["kind"] for a in left] == ["door_forced"]
    audit = c.get("/api/v1/audit", headers=api.as_(Role.ADMIN)).json()
    assert [a["action"] for a in audit[:2]] == ["alert.resolve", "alert.ack"]


def test_health_ready_and_metrics(api: Api) -> None:
    c = api.client
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json()["ready"] is True
    assert c.get("/metrics").status_code == 401
    key = c.post("/api/v1/auth/api-keys", json={"name": "prometheus", "role": "viewer"},
                 headers=api.as_(Role.ADMIN)).json()["key"]  # fmt: skip
    text = c.get("/metrics", headers={"Authorization": f"Bearer {key}"}).text
    for name in ("menjin_gates_online", "menjin_events_stored", "menjin_stream_clients"):
        assert name in text


def test_resume_replays_a_lower_id_committed_after_the_last_seen(api: Api) -> None:
    from central.routes.events import EventFilter, _replay
    from central.store.tables import events

    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    t0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    base = {"site": "s1", "gate": "east", "epoch": 1, "type": "decision", "at": t0,
            "at_offset_min": 0, "details": {}}  # fmt: skip
    with engine.begin() as conn:
        # Replica B commits id 3 first; replica A's id 2 commits 0.5 s later.
        conn.execute(events.insert(), [
            base | {"id": 1, "seq": 1, "received_at": t0 - timedelta(seconds=10)},
            base | {"id": 3, "seq": 3, "received_at": t0},
            base | {"id": 2, "seq": 2, "received_at": t0 + timedelta(milliseconds=500)},
            base | {"id": 4, "seq": 4, "received_at": t0 + timedelta(seconds=1)},
        ])  # fmt: skip
    replayed = [e["event_id"] for e in _replay(engine, EventFilter(), after=3)]
    assert replayed == [2, 4]  # 2 is not lost; 1, long before, is not resent
