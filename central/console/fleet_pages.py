"""Fleet control in the console (issue #11): the policy page (site policy, gate overrides and
the versions gates applied), lockdowns started and ended, emergency releases ended, and the
banner every page carries. Reads are for every role; writes are admin forms calling the API's
own route functions, so they are audited and pushed to gates exactly as the API's are."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.datastructures import FormData

from central.auth import Principal
from central.config import CentralSettings
from central.console import fleet_data, office_data
from central.console.office import AdminForm
from central.console.pages import ConsoleUser
from central.console.render import fragment, page
from central.deps import EngineDep, IdPath, IngestDep, SettingsDep
from central.fleet import PolicyFields
from central.routes import lockdowns as orders_api
from central.routes import policy as policy_api
from central.routes.lockdowns import LockdownCreate
from protocol.epass import HolderKind
from protocol.gate_policy import AntiPassback, Direction, TemperaturePolicy
from protocol.policy import LockdownMode, PolicyDocument

router = APIRouter(include_in_schema=False)
CHOICES = {"direction": [d.value for d in Direction],
           "temperature": [t.value for t in TemperaturePolicy],
           "anti_passback": [a.value for a in AntiPassback]}  # fmt: skip
NUMBERS = ("fever_threshold", "passback_window_s")
DEFAULTS: dict[str, Any] = jsonable_encoder(
    {name: PolicyDocument.model_fields[name].default for name in (*CHOICES, *NUMBERS)}
)  # what a field nobody sets is, as the forms show it
DONE = {"policy": "fleet.done.policy", "lockdown": "fleet.done.lockdown"}
Errors = dict[str, list[str]]
LOCAL_PATH = re.compile(r"/[A-Za-z0-9/_.~%=&?-]*")


def back_to(target: str, fallback: str = "/fleet") -> RedirectResponse:
    """Back to the page a form was posted from: a local path only, never another origin (no
    `//host`, no backslash or control character a browser would turn into one)."""
    local = LOCAL_PATH.fullmatch(target) is not None and not target.startswith("//")
    return RedirectResponse(target if local else fallback, status.HTTP_303_SEE_OTHER)


def _inherits(gate: policy_api.GatePolicyPublic) -> dict[str, Any]:
    """What each empty field of a gate's form falls back to: the signed document's value where
    the gate sets nothing itself (it holds the site's and the provisioned direction), else the
    site's value or the default."""
    held = gate.document.model_dump(mode="json") if gate.document else {}
    return {name: held[name] if name not in gate.fields and name in held
            else gate.site_fields.get(name, DEFAULTS[name]) for name in DEFAULTS}  # fmt: skip


def _fleet(
    request: Request, engine: Engine, user: Principal, settings: CentralSettings,
    form: tuple[str, dict[str, Any], Errors] | None = None, code: int = 200,
) -> Response:  # fmt: skip
    body = fleet_data.fleet_data(engine, user, settings)
    inherits = {g.gate_id: _inherits(g) for s in body["sites"] for g in s["gates"]}
    scope, values, errors = form or ("", {}, {})
    return page(request, "fleet.html", user, body, code, home="/fleet", gate_inherits=inherits,
                defaults=DEFAULTS, form_values={scope: values} if scope else {},
                form_errors={scope: errors} if scope else {}, policy_choices=CHOICES,
                holder_kinds=[k.value for k in HolderKind],
                lockdown_modes=[m.value for m in LockdownMode],
                notice=DONE.get(request.query_params.get("done", "")))  # fmt: skip


@router.get("/fleet")
@router.get("/fleet.json")
def fleet_page(
    request: Request, engine: EngineDep, user: ConsoleUser, settings: SettingsDep
) -> Response:
    """Each site's policy and gates with the versions they applied; admins edit them."""
    return _fleet(request, engine, user, settings)


@router.get("/_partials/orders")
def orders_partial(request: Request, engine: EngineDep, user: ConsoleUser) -> Response:
    back = request.query_params.get("path", "/")  # the page the banner is on: where end returns
    return fragment(request, "_partials/orders.html", user,
                    orders=fleet_data.banner(engine, user), back=back)  # fmt: skip


def policy_values(form: FormData) -> dict[str, Any]:
    """The policy form as PUT .../policy's body: an empty field is inherited, left out."""
    values: dict[str, Any] = {}
    for name in (*CHOICES, *NUMBERS):
        value = str(form.get(name) or "").strip()
        if value:
            values[name] = value
    if form.get("live_code") == "set":
        values["live_code_kinds"] = [str(k) for k in form.getlist("live_code_kinds")]
    return values


def policy_errors(exc: ValidationError) -> Errors:
    errors: Errors = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        key = f"policy.error.{field}" if field in NUMBERS else "policy.error.invalid"
        errors.setdefault(field, []).append(key)
    return errors


def _scope_of(engine: Engine, user: Principal, settings: CentralSettings, site: str) -> str:
    """The form's id prefix on the policy page (`site-2`), to put its errors back in place."""
    sites = office_data.sites(engine, user, settings)  # the page's order of sites
    return f"site-{sites.index(site) + 1}" if site in sites else "site-0"


async def _save_policy(
    request: Request, engine: Engine, user: Principal, settings: CentralSettings, scope: str,
    save: Callable[[PolicyFields], object],
) -> Response:  # fmt: skip
    """The form as a PolicyFields body, saved by `save`; its field errors beside the fields."""
    values = policy_values(await request.form())
    try:
        body = PolicyFields.model_validate(values)
    except ValidationError as exc:
        return _fleet(request, engine, user, settings, (scope, values, policy_errors(exc)), 422)
    save(body)
    return back_to("/fleet?done=policy")


@router.post("/fleet/sites/{site}/policy")
async def site_policy_form(
    request: Request, site: policy_api.SitePath, engine: EngineDep, ingest: IngestDep,
    settings: SettingsDep, user: AdminForm,
) -> Response:  # fmt: skip
    """PUT /api/v1/sites/{site}/policy's own function."""
    scope = _scope_of(engine, user, settings, site)
    return await _save_policy(request, engine, user, settings, scope, lambda body:
                              policy_api.put_site_policy(site, body, user, engine, ingest,
                                                         request))  # fmt: skip


@router.post("/fleet/gates/{gate_id}/policy")
async def gate_policy_form(
    request: Request, gate_id: IdPath, engine: EngineDep, ingest: IngestDep,
    settings: SettingsDep, user: AdminForm,
) -> Response:  # fmt: skip
    """PUT /api/v1/gates/{id}/policy's own function."""
    return await _save_policy(request, engine, user, settings, f"gate-{gate_id}", lambda body:
                              policy_api.put_gate_policy(gate_id, body, user, engine, ingest,
                                                         request))  # fmt: skip


@router.post("/lockdowns/new")
async def lockdown_form(
    request: Request, engine: EngineDep, ingest: IngestDep, settings: SettingsDep,
    user: AdminForm, gates: Annotated[list[str] | None, Form()] = None,
) -> Response:  # fmt: skip
    """POST /api/v1/lockdowns' own function: site, mode, a reason, the gates (none: all)."""
    form = await request.form()
    site = str(form.get("site") or "")
    values = {"site": site, "mode": str(form.get("mode") or ""),
              "reason": str(form.get("reason") or "").strip(), "gates": gates or None}  # fmt: skip
    try:
        body = LockdownCreate.model_validate(values)
    except ValidationError as exc:
        errors = {str(e["loc"][0]): [f"lockdown.error.{e['loc'][0]}"] for e in exc.errors()}
        scope = _scope_of(engine, user, settings, site) + "-lock"
        return _fleet(request, engine, user, settings, (scope, values, errors), 422)
    orders_api.start_lockdown(body, user, engine, ingest, request)
    return back_to("/fleet?done=lockdown")


@router.post("/lockdowns/{order_id}/end")
@router.post("/releases/{order_id}/end")
def end_order_form(
    request: Request, order_id: IdPath, engine: EngineDep, ingest: IngestDep,
    user: AdminForm, next_path: Annotated[str, Form(alias="next")] = "/",
) -> Response:  # fmt: skip
    """DELETE /api/v1/lockdowns/{id}'s (or /releases/{id}'s) own function, from the banner's
    or the gate page's end button."""
    release = request.url.path.startswith("/releases/")
    end = orders_api.end_release if release else orders_api.end_lockdown
    end(order_id, user, engine, ingest, request)
    return back_to(next_path, "/")
