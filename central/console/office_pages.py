"""The office's pass pages (admin): search and list, issue, one pass (revoke, re-issue, which
gates applied it) and printed cards. Every action calls the API's own route function."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy import Engine

from central.auth import Principal
from central.config import CentralSettings
from central.console import enrol_pages, office_data
from central.console.i18n import words_for
from central.console.office import AdminForm, AdminPage
from central.console.render import fragment, page
from central.deps import EngineDep, IngestDep, SettingsDep
from central.imports.messages import problem, problems_of
from central.pass_signing import PassCreate
from central.routes import cards as cards_api
from central.routes import pass_lifecycle as lifecycle_api
from central.routes import passes as passes_api
from central.routes.cards import CardsRequest
from central.routes.pass_lifecycle import ReissueRequest
from central.routes.passes import RevokeRequest, get_signing_key
from central.store.passes_store import PassStatus
from protocol.epass import HolderKind

router = APIRouter(include_in_schema=False)
LIST_PAGE = 50
FIELDS = ("site", "holder", "kind", "valid_from", "valid_until", "gates", "hours", "days",
          "max_uses", "unit", "phone")  # fmt: skip
PRESETS = ("resident", "visitor", "delivery")


def _site_tz(settings: CentralSettings, site: str) -> ZoneInfo:
    return ZoneInfo(settings.site(site).timezone)


def preset_values(preset: str, site: str, settings: CentralSettings) -> dict[str, str]:
    """Resident: a year from today; visitor: today only; delivery: daytime for 30 days."""
    today = datetime.now(_site_tz(settings, site)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)  # fmt: skip
    spans = {"resident": (timedelta(days=365), None), "visitor": (timedelta(days=1), None),
             "delivery": (timedelta(days=30), "08:00-20:00")}  # fmt: skip
    span, hours = spans.get(preset, spans["resident"])
    kind = preset if preset in PRESETS else "resident"
    return {"site": site, "kind": kind, "valid_from": today.strftime("%Y-%m-%dT%H:%M"),
            "valid_until": (today + span).strftime("%Y-%m-%dT%H:%M"), "hours": hours or "",
            "max_uses": "0"}  # fmt: skip


@router.get("/passes")
@router.get("/passes.json")
def passes_page(
    request: Request,
    engine: EngineDep,
    user: AdminPage,
    q: Annotated[str | None, Query(max_length=120)] = None,
    kind: str | None = None,
    pass_status: Annotated[str | None, Query(alias="status")] = None,
    cursor: str | None = None,
) -> Response:
    """Passes found by name, unit, phone, kind and status, as GET /api/v1/passes gives them."""
    kinds = {k.value: k for k in HolderKind}
    states = {s.value: s for s in PassStatus}
    with engine.begin() as conn:  # the list audits its read of the pass texts
        found = passes_api.list_passes(conn, user, request, q or None, None,
                                       kinds.get(kind or ""), states.get(pass_status or ""),
                                       LIST_PAGE, cursor or None)  # fmt: skip
    params = {k: v for k, v in request.query_params.items() if k != "cursor" and v}
    body = {"passes": found.items, "next_cursor": found.next_cursor}
    kinds_, states_ = [k.value for k in HolderKind], [s.value for s in PassStatus]
    return page(request, "passes.html", user, body, params=params, kinds=kinds_, states=states_)


def _new_form(
    request: Request, engine: Engine, user: Principal, settings: CentralSettings,
    values: dict[str, Any], errors: dict[str, list[Any]], code: int = 200,
) -> Response:  # fmt: skip
    body = {"values": values, "errors": errors}
    response = page(request, "pass_new.html", user, body, home="/passes/new", presets=PRESETS,
                    sites=office_data.sites(engine, user, settings),
                    site_gates=office_data.site_gates(engine, user),
                    kinds=[k.value for k in HolderKind])  # fmt: skip
    response.status_code = code
    return response


@router.get("/passes/new")
def new_pass_page(
    request: Request, engine: EngineDep, user: AdminPage, settings: SettingsDep,
    preset: str = "resident", site: str | None = None,
) -> Response:  # fmt: skip
    """The issue form, filled in from a preset in the site's time zone."""
    site = site or next(iter(office_data.sites(engine, user, settings)), "")
    values = preset_values(preset, site, settings) | {"preset": preset}
    return _new_form(request, engine, user, settings, values, {})


def _in_zone(value: str, tz: ZoneInfo) -> str:
    """A date picker's time (no offset) as the site's local time; other text unchanged."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return value  # the API's check names the field
    return (at if at.tzinfo else at.replace(tzinfo=tz)).isoformat()


def _fields(
    form: dict[str, Any], gates: list[str], settings: CentralSettings | None = None
) -> dict[str, Any]:
    """The form as the API's body: empty optional fields left out, as a client would; the
    date pickers' times in the site's zone."""
    body: dict[str, Any] = {k: v.strip() for k, v in form.items()
                            if k in FIELDS and isinstance(v, str) and v.strip()}  # fmt: skip
    body["gates"] = [g for g in gates if g]
    if settings is not None:
        tz = _site_tz(settings, str(body.get("site", "")))
        for name in ("valid_from", "valid_until"):
            if name in body:
                body[name] = _in_zone(body[name], tz)
    return body


@router.post("/passes/new")
async def issue_pass_form(
    request: Request, engine: EngineDep, user: AdminForm, settings: SettingsDep,
    gates: Annotated[list[str] | None, Form()] = None,
) -> Response:  # fmt: skip
    """Issue through POST /api/v1/passes' own function; its 422 lands next to each field."""
    form: dict[str, Any] = dict((await request.form()).items())
    fields = _fields(form, gates or [], settings)
    if form.get("device_bound") == "on":
        fields["device_bound"] = True  # the checkbox 绑定手机: the API's own flag
    values = {**form, "gates": fields["gates"]}
    errors: dict[str, list[Any]] = {}
    try:
        body = PassCreate.model_validate(fields)
    except ValidationError as exc:
        words = words_for(request)
        titles = {f: words(f"pass.field.{f}") for f in FIELDS}
        for field, found in problems_of(exc, titles):
            errors.setdefault(field or "", []).append(found)
        return _new_form(request, engine, user, settings, values, errors, 422)
    key = get_signing_key(engine)
    try:
        with engine.begin() as conn:
            issued = passes_api.issue_pass(body, user, conn, key, request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_422_UNPROCESSABLE_CONTENT:
            raise
        errors[""] = [problem("import.error.pass_too_large")]
        return _new_form(request, engine, user, settings, values, errors, 422)
    if issued.enrol_url:  # shown once: the link is stored only as a hash
        return enrol_pages.show_once(request, issued.pass_id, issued.enrol_url, issued=True)
    return RedirectResponse(f"/passes/{issued.pass_id}?issued=1", status.HTTP_303_SEE_OTHER)


@router.post("/passes/cards.pdf")
async def cards_form(
    request: Request, engine: EngineDep, user: AdminForm, settings: SettingsDep,
    pass_ids: Annotated[list[str] | None, Form()] = None,
    layout: Annotated[str, Form()] = "a4-8",
) -> Response:  # fmt: skip
    """The chosen passes' cards, from POST /api/v1/passes/cards.pdf's own function, to save."""
    if not pass_ids:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "choose passes to print")
    body = CardsRequest.model_validate({"pass_ids": pass_ids, "layout": layout})
    with engine.begin() as conn:
        pdf = cards_api.print_cards(body, user, conn, settings, request)
    pdf.headers["Content-Disposition"] = 'attachment; filename="cards.pdf"'
    return pdf


@router.get("/passes/{pass_id}")
@router.get("/passes/{pass_id}.json")
def pass_page(request: Request, pass_id: str, engine: EngineDep, user: AdminPage) -> Response:
    """One pass: its QR, events at every gate, and which gates have applied its revocation."""
    found = office_data.pass_detail(engine, user, request, pass_id.removesuffix(".json"))
    revoked = request.query_params.get("links_revoked", "")
    enrol = enrol_pages.link_shown(request, found["pass"].pass_id)
    return page(request, "pass.html", user, found, enrol=enrol,
                links_revoked=int(revoked) if revoked.isdigit() else None,
                issued=request.query_params.get("issued") == "1")  # fmt: skip


@router.get("/passes/{pass_id}/_gates")
def applied_partial(request: Request, pass_id: str, engine: EngineDep, user: AdminPage) -> Response:
    with engine.connect() as conn:
        state = lifecycle_api.revocation_at_gates(pass_id, conn, user)
    return fragment(request, "_partials/applied.html", user, applied=state)


@router.post("/passes/{pass_id}/revoke")
def revoke_form(
    request: Request, pass_id: str, engine: EngineDep, ingest: IngestDep, user: AdminForm,
    reason: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:  # fmt: skip
    passes_api.revoke_pass(pass_id, RevokeRequest(reason=reason), user, engine, ingest, request)
    return RedirectResponse(f"/passes/{pass_id}", status.HTTP_303_SEE_OTHER)


@router.post("/passes/{pass_id}/reissue")
def reissue_form(
    request: Request, pass_id: str, engine: EngineDep, ingest: IngestDep, user: AdminForm,
    settings: SettingsDep, reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:  # fmt: skip
    body = ReissueRequest(reason=reason) if reason.strip() else ReissueRequest()
    key = get_signing_key(engine)
    done = lifecycle_api.reissue_pass(pass_id, user, engine, ingest, key, request, body)
    return RedirectResponse(f"/passes/{done.new.pass_id}?issued=1", status.HTTP_303_SEE_OTHER)
