"""The office's user pages (admin): users and their roles, disable/enable, a new password, end
sessions; API keys (created with an expiry, shown once, revoked); the audit log filtered by
who, what and when. Every action calls the API's own route function."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy import Engine

from central.auth import Principal, Role
from central.console.office import AdminForm, AdminPage
from central.console.pages import _local
from central.console.render import page
from central.deps import EngineDep, IdPath, SettingsDep
from central.routes import auth as auth_api
from central.routes import ops as ops_api
from central.routes.auth import ApiKeyCreate, PasswordReset, UserCreate

router = APIRouter(include_in_schema=False)
AUDIT_PAGE = 100
DONE = {"created": "users.done.created", "disabled": "users.done.disabled",
        "enabled": "users.done.enabled", "password": "users.done.password",
        "sessions": "users.done.sessions", "key_revoked": "users.done.key_revoked"}  # fmt: skip
ACTIONS = ("disable", "enable", "password", "end-sessions")


def _users(
    request: Request, engine: Engine, user: Principal, extra: dict[str, Any], code: int = 200
) -> Response:
    with engine.connect() as conn:
        body = {"users": auth_api.list_users(user, conn),
                "api_keys": auth_api.list_api_keys(user, conn)}  # fmt: skip
    q = request.query_params
    notice = DONE.get(q.get("done", ""))
    found: dict[str, Any] = {
        "errors": {},
        "created_key": None,
        "notice": notice,
        "who": q.get("who", ""),
    }
    response = page(request, "users.html", user, body, home="/users", roles=[r.value for r in Role],
                    **(found | extra))  # fmt: skip
    response.status_code = code
    return response


def _done(what: str, who: str) -> Response:
    return RedirectResponse("/users?" + urlencode({"done": what, "who": who}),
                            status.HTTP_303_SEE_OTHER)  # fmt: skip


@router.get("/users")
@router.get("/users.json")
def users_page(request: Request, engine: EngineDep, user: AdminPage) -> Response:
    """Users and API keys, as GET /api/v1/auth/users and /api-keys list them."""
    return _users(request, engine, user, {})


def _errors(exc: ValidationError, form: str) -> dict[str, str]:
    return {f"{form}.{e['loc'][0] if e['loc'] else ''}": "users.error.invalid"
            for e in exc.errors()}  # fmt: skip


@router.post("/users/new")
def add_user(
    request: Request, engine: EngineDep, user: AdminForm,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=400)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:  # fmt: skip
    try:
        body = UserCreate.model_validate({"username": username.strip(), "password": password,
                                          "role": role})  # fmt: skip
    except ValidationError as exc:
        return _users(request, engine, user, {"errors": _errors(exc, "user")}, 422)
    try:
        with engine.begin() as conn:
            auth_api.create_user(body, user, conn, request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_409_CONFLICT:
            raise
        return _users(request, engine, user, {"errors": {"user.username": "users.error.exists"}},
                      409)  # fmt: skip
    return _done("created", body.username)


@router.post("/users/{username}/{action}")
def user_action(
    request: Request, username: str, action: str, engine: EngineDep, user: AdminForm,
    password: Annotated[str, Form(max_length=400)] = "",
) -> Response:  # fmt: skip
    """Disable, enable, set a new password or end the sessions of one user."""
    if action not in ACTIONS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such action")
    reset = PasswordReset.model_construct(password=password)
    if action == "password":
        try:
            reset = PasswordReset(password=password)
        except ValidationError:
            errors = {f"password.{username}": "users.error.password"}
            return _users(request, engine, user, {"errors": errors}, 422)
    try:
        with engine.begin() as conn:
            if action == "disable":
                auth_api.disable_user(username, user, conn, request)
            elif action == "enable":
                auth_api.enable_user(username, user, conn, request)
            elif action == "password":
                auth_api.reset_password(username, reset, user, conn, request)
            else:
                auth_api.end_sessions(username, user, conn, request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_409_CONFLICT:
            raise
        return _users(request, engine, user, {"errors": {"last_admin": "users.error.last_admin"}},
                      409)  # fmt: skip
    done = {"disable": "disabled", "enable": "enabled", "end-sessions": "sessions"}
    return _done(done.get(action, action), username)


@router.post("/api-keys/new")
def add_api_key(
    request: Request, engine: EngineDep, settings: SettingsDep, user: AdminForm,
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    expires_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:  # fmt: skip
    """Create a key; the page shows it this once (the API keeps only its hash)."""
    expires = _local(expires_at, ZoneInfo(settings.console.timezone))
    try:
        body = ApiKeyCreate.model_validate({"name": name.strip(), "role": role,
                                            "expires_at": expires})  # fmt: skip
    except ValidationError as exc:
        return _users(request, engine, user, {"errors": _errors(exc, "key")}, 422)
    try:
        with engine.begin() as conn:
            created = auth_api.create_api_key(body, user, conn, request)
    except HTTPException as exc:
        if exc.status_code != status.HTTP_422_UNPROCESSABLE_CONTENT:
            raise
        return _users(request, engine, user,
                      {"errors": {"key.expires_at": "users.error.expiry"}}, 422)  # fmt: skip
    return _users(request, engine, user, {"created_key": created})


@router.post("/api-keys/{key_id}/revoke")
def revoke_key(request: Request, key_id: IdPath, engine: EngineDep, user: AdminForm) -> Response:
    with engine.begin() as conn:
        auth_api.revoke_api_key(key_id, user, conn, request)
    return _done("key_revoked", str(key_id))


@router.get("/audit")
@router.get("/audit.json")
def audit_page(
    request: Request, engine: EngineDep, user: AdminPage, settings: SettingsDep,
    before_id: int | None = None,
) -> Response:  # fmt: skip
    """The audit log as GET /api/v1/audit gives it, filtered by who, what and when."""
    q = request.query_params
    tz = ZoneInfo(settings.console.timezone)
    since: datetime | None = _local(q.get("since"), tz)
    until: datetime | None = _local(q.get("until"), tz)
    found = ops_api.audit_log(engine, user, AUDIT_PAGE, before_id, q.get("actor") or None,
                              q.get("action") or None, since, until)  # fmt: skip
    params = {k: v for k, v in q.items() if k != "before_id" and v}
    more = found[-1].id if len(found) == AUDIT_PAGE else None
    return page(request, "audit.html", user, {"entries": found, "next_before_id": more},
                params=params)  # fmt: skip
