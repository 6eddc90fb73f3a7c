"""The office's gate pages (admin): every gate with its live state, version, counters and
config; provision a new one (its gate.toml and broker credentials shown once, after a redirect);
one gate with its recent events and faults, and its emergency release. Each calls the API's own
route functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy import Engine

from central.auth import Principal
from central.config import CentralSettings
from central.console import data, fleet_data, session
from central.console.flash import Flashes
from central.console.office import AdminForm, AdminPage
from central.console.render import page
from central.deps import EngineDep, IdPath, IngestDep, SettingsDep
from central.routes import alerts as alerts_api
from central.routes import events as events_api
from central.routes import gates as gates_api
from central.routes import lockdowns as orders_api
from central.routes import policy as policy_api
from central.routes.events import EventFilter
from central.routes.gates import GateCreate, GateProvisioned
from central.routes.lockdowns import ReleaseCreate
from protocol.gate_policy import AntiPassback, Direction, GatePolicy, TemperaturePolicy

router = APIRouter(include_in_schema=False)
GATE_EVENTS = 50
GATE_ALERTS = 50
FIELDS = ("site", "gate", "direction", "timezone", "temperature", "fever_threshold",
          "anti_passback")  # fmt: skip
CHOICES = {"direction": [d.value for d in Direction],
           "temperature": [t.value for t in TemperaturePolicy],
           "anti_passback": [a.value for a in AntiPassback]}  # fmt: skip


def _list(
    request: Request, engine: Engine, user: Principal, settings: CentralSettings,
    values: dict[str, Any], errors: dict[str, str], code: int = 200,
) -> Response:  # fmt: skip
    body = {"tiles": data.gate_tiles(engine, user),
            "summaries": fleet_data.site_summaries(engine, user, settings)}  # fmt: skip
    return page(request, "gates.html", user, body, code, home="/gates", values=values,
                errors=errors, choices=CHOICES)  # fmt: skip


@router.get("/gates")
@router.get("/gates.json")
def gates_page(
    request: Request, engine: EngineDep, user: AdminPage, settings: SettingsDep
) -> Response:
    """Gates as GET /api/v1/gates gives them, each site's policy summary, the provisioning form."""
    defaults = GatePolicy().model_dump(mode="json")
    return _list(request, engine, user, settings, defaults, {})


@router.post("/gates/new")
async def provision_form(
    request: Request, engine: EngineDep, settings: SettingsDep, user: AdminForm
) -> Response:
    """Provision through POST /api/v1/gates' own function; the answer is shown only once."""
    form = {k: v.strip() for k, v in (await request.form()).items()
            if k in FIELDS and isinstance(v, str) and v.strip()}  # fmt: skip
    errors: dict[str, str] = {}
    try:
        body = GateCreate.model_validate(form)
    except ValidationError as exc:
        errors = {str(e["loc"][0]) if e["loc"] else "": "gates.error.invalid"
                  for e in exc.errors()}  # fmt: skip
        return _list(request, engine, user, settings, form, errors, 422)
    try:
        with engine.begin() as conn:
            made = gates_api.provision_gate(body, user, conn, settings, request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_409_CONFLICT:
            raise
        return _list(request, engine, user, settings, form, {"gate": "gates.error.exists"}, 409)
    return _show_once(request, made)


def _show_once(request: Request, made: GateProvisioned) -> Response:
    """Post/redirect/get, as the enrol links do: the credentials wait in the server's flashes
    (not in the URL) for the page the redirect asks for, so a reload or Back never posts again
    and the password is in no history entry that could show it twice."""
    flashes: Flashes = request.app.state.flashes
    nonce = flashes.put(session.session_token(request) or "", _scope(made.id),
                        made.model_dump_json(), datetime.now(UTC))  # fmt: skip
    query = urlencode({"shown": nonce})
    return RedirectResponse(f"/gates/{made.id}/provisioned?{query}", status.HTTP_303_SEE_OTHER)


def _scope(gate_id: int) -> str:
    return f"gate-provisioned-{gate_id}"


@router.get("/gates/{gate_id}/provisioned")
def provisioned_page(request: Request, gate_id: IdPath, user: AdminPage) -> Response:
    """The new gate's config and broker credentials, once: taken from the flashes, so a reload
    shows that they were shown and are gone."""
    nonce, token = request.query_params.get("shown", ""), session.session_token(request)
    flashes: Flashes = request.app.state.flashes
    held = flashes.take(token, _scope(gate_id), nonce, datetime.now(UTC)) if token else None
    made = None if held is None else GateProvisioned.model_validate_json(held)
    return page(request, "gate_provisioned.html", user, {"provisioned": made, "gate_id": gate_id},
                home="/gates")  # fmt: skip


def _gate(
    request: Request, gate_id: int, engine: Engine, user: Principal, error: str = "",
    code: int = 200,
) -> Response:  # fmt: skip
    tile = next((t for t in data.gate_tiles(engine, user) if t["gate"].id == gate_id), None)
    if tile is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such gate")
    gate = tile["gate"]
    flt = EventFilter(site=gate.site, gate=gate.gate)
    found = events_api.list_events(engine, user, flt, None, GATE_EVENTS)
    faults = alerts_api.list_alerts(engine, user, state="all", kind=None, site=gate.site,
                                    gate=gate.gate, limit=GATE_ALERTS)  # fmt: skip
    orders = fleet_data.banner(engine, user)  # read once: the banner's and this gate's own
    releases = [o for o in orders["releases"] if fleet_data.covers(o, gate.site, gate.gate)]
    body = {"tile": tile, "events": found.items, "alerts": faults, "releases": releases}
    return page(request, "gate.html", user, body, code, home=f"/gates/{gate_id}", orders=orders,
                release_error=error)  # fmt: skip


@router.get("/gates/{gate_id}")
def gate_page(request: Request, gate_id: IdPath, engine: EngineDep, user: AdminPage) -> Response:
    """One gate: its state, emergency release, recent events and faults (alerts of every state)."""
    return _gate(request, gate_id, engine, user)


@router.post("/gates/{gate_id}/release")
def release_form(
    request: Request, gate_id: IdPath, engine: EngineDep, ingest: IngestDep, user: AdminForm,
    reason: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    """POST /api/v1/releases' own function for this one gate: its door held open until ended.
    A reason is required; nothing starts a release but this deliberate, confirmed form."""
    with engine.connect() as conn:
        row = policy_api.gate_policy(conn, gate_id)
    try:  # the API's own limits on the reason, its error beside the field
        body = ReleaseCreate(site=row.site, gates=[row.gate], reason=reason.strip())
    except ValidationError:
        error = "release.error.reason_long" if reason.strip() else "release.error.reason"
        return _gate(request, gate_id, engine, user, error, 422)
    orders_api.start_release(body, user, engine, ingest, request)
    return RedirectResponse(f"/gates/{gate_id}", status.HTTP_303_SEE_OTHER)
