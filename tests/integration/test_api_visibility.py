"""Personal data by role, through HTTP: every response model the OpenAPI document names × every
role, checked field by field against central/visibility.py; the pass text's reads audited; the
CSV export redacted and formula-escaped."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from central import keyring, visibility
from central.auth import Role
from central.store.tables import alerts, events
from tests.integration.api_helpers import Api
from tests.integration.test_api_passes import issue

Schema = dict[str, Any]
NAME = "张三华"


def openapi(api: Api) -> Schema:
    doc: Schema = api.client.get("/openapi.json").json()
    return doc


def refs(schema: Any) -> Iterator[str]:
    """Every component name a schema refers to, however deep."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            yield schema["$ref"].rsplit("/", 1)[1]
        for value in schema.values():
            yield from refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from refs(value)


def response_models(doc: Schema) -> set[str]:
    """Component models any successful response can contain (closed over references)."""
    named = {
        name
        for ops in doc["paths"].values()
        for op in ops.values()
        for code, resp in op["responses"].items()
        if code.startswith("2")
        for name in refs(resp)
    }
    return _closure(doc, named)


def instances(schema: Schema, value: Any, doc: Schema) -> Iterator[tuple[str, dict[str, Any]]]:
    """(model name, object) for every model instance in a response value."""
    if value is None:
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        model = doc["components"]["schemas"][name]
        if isinstance(value, dict):
            yield name, value
            for field, sub in model.get("properties", {}).items():
                yield from instances(sub, value.get(field), doc)
        return
    for alt in schema.get("anyOf", []):
        yield from instances(alt, value, doc)
    if schema.get("type") == "array" and isinstance(value, list):
        for item in value:
            yield from instances(schema.get("items", {}), item, doc)


@pytest.fixture
def populated(api: Api) -> dict[str, str]:
    """A pass, an event with a snapshot and the gate's facts about the holder, an alert, a
    gate: every kind of personal data once."""
    issued = issue(api, holder=NAME, unit="3-2-501", phone="13812345678")
    api.client.post("/api/v1/gates", json={"site": "hutong-12", "gate": "east"},
                    headers=api.as_(Role.ADMIN))  # fmt: skip
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        event_id = conn.execute(
            events.insert().values(
                site="hutong-12", gate="east", epoch=1, seq=1, type="decision", at=now,
                at_offset_min=480, received_at=now, granted=False, reason="=HYPERLINK(\"x\")",
                pass_id=issued["pass_id"], snapshot="face.jpg",
                details={"display_name": "张*华", "holder_kind": "resident", "flags": []},
            )
        ).inserted_primary_key[0]  # fmt: skip
        conn.execute(alerts.insert().values(site="hutong-12", gate="east", kind="fever",
                     state="open", opened_at=now, event_id=event_id, details={}))  # fmt: skip
    with engine.connect() as conn:
        [key] = [k for k in keyring.keys(conn) if k.state == "active" and k.purpose == "pass"]
    return {"pass_id": issued["pass_id"], "event_id": str(event_id), "gate_id": "1",
            "site": "hutong-12", "key_id": key.key_id}  # fmt: skip


def test_every_response_model_is_classified(api: Api) -> None:
    """A new response model must say in central/visibility.py what personal data it holds."""
    doc = openapi(api)
    models = {m for m in response_models(doc) if "enum" not in doc["components"]["schemas"][m]}
    assert models - set(visibility.FIELDS) == set()


def _get_routes(doc: Schema) -> list[tuple[str, Schema]]:
    out = []
    for path, ops in doc["paths"].items():
        if "{token}" in path:  # a one-time link answers its holder, not a role: test_api_enrol
            continue
        op = ops.get("get")
        content = op and op["responses"].get("200", {}).get("content", {})
        if content and "application/json" in content:
            out.append((path, content["application/json"]["schema"]))
    return out


def _lookup(value: dict[str, Any], path: str) -> Any:
    field, _, key = path.partition(".")
    inner = value.get(field)
    return inner.get(key) if key and isinstance(inner, dict) else (None if key else inner)


def test_every_model_by_every_role_shows_only_what_the_role_may_see(
    api: Api, populated: dict[str, str]
) -> None:
    doc = openapi(api)
    seen: set[tuple[str, Role]] = set()
    for path, schema in _get_routes(doc):
        url = path
        for name, value in populated.items():
            url = url.replace(f"{{{name}}}", value)
        for role in Role:
            r = api.client.get(url, headers=api.as_(role))
            if r.status_code == 403:
                continue
            assert r.status_code == 200, (url, role, r.text)
            for model, value in instances(schema, r.json(), doc):
                seen.add((model, role))
                for field, kind in visibility.FIELDS[model].items():
                    shown = _lookup(value, field)
                    if visibility.sees(role, kind):
                        assert shown is not None, (url, role, model, field)
                    else:
                        assert shown is None, (url, role, model, field, shown)
                if role is not Role.ADMIN:
                    assert populated["pass_id"] not in str(value.get("text")), (url, role)
                    assert NAME not in str(value), (url, role, model)
    for model, rules in visibility.FIELDS.items():
        if rules and model not in visibility.ADMIN_ONLY:
            assert {(model, role) for role in Role} <= seen, model


def _closure(doc: Schema, names: set[str]) -> set[str]:
    todo, found = list(names), set()
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(refs(doc["components"]["schemas"][name]))
    return found


def test_admin_only_models_come_only_from_admin_only_routes(api: Api) -> None:
    doc = openapi(api)
    found = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = {c: r for c, r in op["responses"].items() if c.startswith("2")}
            models = _closure(doc, set(refs(ok)))
            if not visibility.ADMIN_ONLY & models:
                continue
            found |= visibility.ADMIN_ONLY & models
            url = re.sub(r"\{[^}]+\}", "1", path)
            for role in (Role.GUARD, Role.VIEWER):
                r = api.client.request(method.upper(), url, headers=api.as_(role))
                assert r.status_code == 403, (method, path, role, r.status_code)
    assert found == visibility.ADMIN_ONLY


def test_reads_of_the_pass_text_are_audited(api: Api, populated: dict[str, str]) -> None:
    pid = populated["pass_id"]
    admin = api.as_(Role.ADMIN)
    for url in (f"/api/v1/passes/{pid}", "/api/v1/passes", f"/api/v1/passes/{pid}/qr.png",
                f"/api/v1/passes/{pid}/qr.svg"):  # fmt: skip
        assert api.client.get(url, headers=admin).status_code == 200
        for role in (Role.GUARD, Role.VIEWER):
            api.client.get(url, headers=api.as_(role))
    reads = [a for a in api.client.get("/api/v1/audit", headers=admin).json()
             if a["action"] == "pass.read_text"]  # fmt: skip
    assert [a["details"]["via"] for a in reads] == ["qr.svg", "qr.png", "list", "detail"]
    assert {a["actor"] for a in reads} == {"admin"}  # guards and viewers never got the text
    assert all(a["target"] == pid or a["details"].get("pass_ids") == [pid] for a in reads)


def test_csv_export_is_redacted_by_role_and_formula_escaped(
    api: Api, populated: dict[str, str]
) -> None:
    for role, snapshot in ((Role.ADMIN, True), (Role.GUARD, True), (Role.VIEWER, False)):
        text = api.client.get("/api/v1/events.csv", headers=api.as_(role)).text
        [row] = list(csv.DictReader(io.StringIO(text)))
        assert row["reason"] == '\'=HYPERLINK("x")'  # text, not a formula, in a spreadsheet
        assert bool(row["snapshot_url"]) is snapshot
    for raw in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert visibility_safe(raw) == "'" + raw
    assert visibility_safe(-0.5) == -0.5 and visibility_safe("ok") == "ok"


def visibility_safe(value: object) -> object:
    from central.views import csv_cell

    return csv_cell(value)


def test_snapshot_image_is_for_admins_and_guards(api: Api, populated: dict[str, str]) -> None:
    url = f"/api/v1/events/{populated['event_id']}/snapshot.jpg"
    assert api.client.get(url, headers=api.as_(Role.VIEWER)).status_code == 403
    assert api.client.get(url, headers=api.as_(Role.GUARD)).status_code == 404  # not uploaded
