"""The signing keys page (admin): every pass and policy key with its state, the active passes
each pass key signed, and its changes (new, activate, retire, the guided re-issue of a key's
passes before it is retired), each through the API's own route function (audited, pushed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine

from central.auth import Principal
from central.console import fleet_data
from central.console.office import AdminForm, AdminPage
from central.console.render import page
from central.deps import EngineDep, IngestDep, SettingsDep
from central.keyring import KeyPurpose
from central.routes import keys as keys_api
from central.routes.keys import KeyCreate

router = APIRouter(include_in_schema=False)
DONE = {"created": "signing.done.created", "activate": "signing.done.activated",
        "retire": "signing.done.retired"}  # fmt: skip


def _keys(
    request: Request, engine: Engine, user: Principal, extra: dict[str, Any], code: int = 200
) -> Response:
    body = {"keys": fleet_data.signing_keys(engine, user)}
    found = {"notice": DONE.get(request.query_params.get("done", "")), "problem": None,
             "reissued": None} | extra  # fmt: skip
    return page(request, "keys.html", user, body, code, home="/keys",
                purposes=[p.value for p in KeyPurpose], **found)  # fmt: skip


@router.get("/keys")
@router.get("/keys.json")
def keys_page(request: Request, engine: EngineDep, user: AdminPage) -> Response:
    """Keys as GET /api/v1/keys gives them, with each pass key's count of active passes."""
    return _keys(request, engine, user, {})


@router.post("/keys/new")
def new_key_form(
    request: Request, engine: EngineDep, settings: SettingsDep, ingest: IngestDep,
    user: AdminForm, purpose: Annotated[KeyPurpose, Form()] = KeyPurpose.PASS,
) -> Response:  # fmt: skip
    keys_api.create_key(KeyCreate(purpose=purpose), user, engine, settings, ingest, request)
    return RedirectResponse("/keys?done=created", status.HTTP_303_SEE_OTHER)


@router.post("/keys/{key_id}/{action}")
def change_key_form(
    request: Request, key_id: str, action: str, engine: EngineDep, ingest: IngestDep,
    user: AdminForm,
) -> Response:  # fmt: skip
    """Activate, retire, or re-issue the active passes a key signed with the active key."""
    try:
        if action == "reissue":
            report = keys_api.reissue_passes(key_id, user, engine, ingest, request)
            return _keys(request, engine, user, {"reissued": report})
        if action not in ("activate", "retire"):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such action")
        change = keys_api.activate_key if action == "activate" else keys_api.retire_key
        change(key_id, user, engine, ingest, request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_409_CONFLICT:
            raise
        return _keys(request, engine, user, {"problem": f"signing.error.{action}"}, 409)
    return RedirectResponse(f"/keys?done={action}", status.HTTP_303_SEE_OTHER)
