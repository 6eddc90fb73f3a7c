"""Forgetting a person (PIPL deletion on request): through the API and `menjin central person
forget`; passes revoked and gone, name, unit and phone gone everywhere, events kept."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, select, text

from central.auth import Role
from central.store.tables import events, people, revocations
from protocol.settings_file import render_toml
from tests.integration.api_helpers import Api
from tests.integration.stack import MENJIN
from tests.integration.test_api_passes import issue

NAME, UNIT, PHONE = "张三华", "3-2-501", "13812345678"


def _dump(db_url: str) -> str:
    """Every row of every table as text: personal data must not be anywhere in it."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            names = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master "
                                                     "WHERE type = 'table'"))]  # fmt: skip
            return "\n".join(
                str(row) for n in names for row in conn.execute(text(f'SELECT * FROM "{n}"'))
            )
    finally:
        engine.dispose()


def _store_event(api: Api, pass_id: str) -> None:
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(events.insert().values(
            site="hutong-12", gate="east", epoch=1, seq=1, type="decision", at=now,
            at_offset_min=480, received_at=now, granted=True, reason="ok", pass_id=pass_id,
            details={"display_name": "张*华", "holder_kind": "resident", "flags": []},
        ))  # fmt: skip


def test_forget_via_api_revokes_and_removes_the_person_keeping_events(api: Api) -> None:
    first = issue(api, holder=NAME, unit=UNIT, phone=PHONE)
    second = issue(api, holder=NAME, unit=UNIT, phone=PHONE)
    other = issue(api, holder="李四", unit="1-1-101", phone=None)
    assert first["person_id"] == second["person_id"] != other["person_id"]
    _store_event(api, first["pass_id"])
    admin = api.as_(Role.ADMIN)
    url = f"/api/v1/people/{first['person_id']}"
    assert api.client.delete(url, headers=api.as_(Role.GUARD)).status_code == 403
    r = api.client.delete(url, headers=admin)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["passes_revoked"]) == sorted([first["pass_id"], second["pass_id"]])
    assert r.json()["events_scrubbed"] == 1
    assert api.client.delete(url, headers=admin).status_code == 404
    assert api.client.get(f"/api/v1/passes/{first['pass_id']}", headers=admin).status_code == 404
    [left] = api.client.get("/api/v1/passes", headers=admin).json()["items"]
    assert left["pass_id"] == other["pass_id"]
    [event] = api.client.get("/api/v1/events", headers=admin).json()["items"]
    assert event["pass_id"] == first["pass_id"] and "display_name" not in event["details"]
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        revoked = {r.pass_id for r in conn.execute(select(revocations)) if r.active}
        assert conn.execute(select(people.c.id)).scalars().all() == [other["person_id"]]
    assert revoked == {first["pass_id"], second["pass_id"]}  # the gates keep refusing them
    dump = _dump(api.settings.database_url())
    for secret in (NAME, UNIT, PHONE, "张*华", first["text"]):
        assert secret not in dump
    audit = api.client.get("/api/v1/audit", headers=admin).json()
    forgot = [a["target"] for a in audit if a["action"] == "person.forget"]
    assert forgot == [str(first["person_id"])]


def test_person_forget_cli(api: Api, tmp_path: Path) -> None:
    issued = issue(api, holder=NAME, unit=UNIT, phone=PHONE)
    config = tmp_path / "central.toml"
    config.write_text(render_toml({"database": {"url": api.settings.database_url()},
                                   "auth": {"secret": "s" * 32}}, {}))  # fmt: skip
    person = str(issued["person_id"])
    args = [MENJIN, "central", "person", "forget", person, "--config", str(config)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passes_revoked"] == [issued["pass_id"]]
    assert NAME not in _dump(api.settings.database_url())
    again = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 2 and "no person" in again.stderr
