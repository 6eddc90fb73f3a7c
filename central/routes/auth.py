"""Login, logout, users (add, disable, enable, reset password, end sessions) and API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from sqlalchemy import Row

from central import auth, login_limits
from central.auth import HashBusyError, HashGate, Role, UserExistsError
from central.config import AuthSection
from central.deps import (
    AdminUser,
    AnyUser,
    ConnDep,
    CurrentUser,
    EngineDep,
    IdPath,
    SettingsDep,
    client_address,
    record_audit,
)
from central.login_limits import LoginPolicy
from central.views import aware

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]+$"
UserName = Annotated[str, Path(min_length=1, max_length=80, pattern=USERNAME_PATTERN)]
NO_USER: dict[int | str, dict[str, Any]] = {404: {"description": "No such user"}}


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, no secret
    expires_at: datetime
    role: Role


def login_policy(cfg: AuthSection) -> LoginPolicy:
    return LoginPolicy(
        free_per_user=cfg.login_free_failures,
        free_per_address=cfg.login_free_failures_per_address,
        backoff_s=cfg.login_backoff_s,
        backoff_max_s=cfg.login_backoff_max_s,
        reset_s=cfg.login_reset_s,
    )


def _user_hash(engine: EngineDep, username: str) -> tuple[str | None, Role | None]:
    with engine.connect() as conn:
        row = auth.find_user(conn, username)
    if row is None or row.disabled:
        return None, None
    return str(row.password_hash), Role(row.role)


@router.post(
    "/token",
    responses={
        401: {"description": "Wrong user name or password"},
        429: {"description": "Back-off after failed logins: retry after Retry-After seconds"},
        503: {"description": "Too many logins at once"},
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    engine: EngineDep,
    settings: SettingsDep,
    request: Request,
) -> Token:
    """OAuth2 password flow: returns a bearer token.

    Failed logins are limited per user name and per client address: after a few, each further
    attempt must wait twice as long as the last (429 with Retry-After), up to a cap.
    """
    now = datetime.now(UTC)
    remote = client_address(request)
    policy = login_policy(settings.auth)
    reserve = login_limits.reserve_login
    wait = await run_in_threadpool(reserve, engine, form.username, remote, now, policy)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins; try again in {login_limits.retry_after(wait)} s",
            headers={"Retry-After": login_limits.retry_after(wait)},
        )
    password_hash, role = await run_in_threadpool(_user_hash, engine, form.username)
    gate: HashGate = request.app.state.hash_gate
    try:
        ok = await gate.run(auth.verify_password, password_hash, form.password)
    except HashBusyError as exc:
        await run_in_threadpool(
            login_limits.refund_login, engine, form.username, remote, policy, success=False
        )
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "1"}
        ) from exc
    if not ok or role is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong user name or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    ttl = timedelta(seconds=settings.auth.token_ttl_s)
    who = auth.Principal(form.username, role)
    token = await run_in_threadpool(_finish_login, engine, request, who, ttl, now, policy)
    return Token(access_token=token, expires_at=now + ttl, role=role)


def _finish_login(
    engine: EngineDep,
    request: Request,
    who: auth.Principal,
    ttl: timedelta,
    now: datetime,
    policy: LoginPolicy,
) -> str:
    login_limits.refund_login(engine, who.name, client_address(request), policy, success=True)
    with engine.begin() as conn:
        token = auth.issue_token(conn, who.name, ttl, now)
        record_audit(conn, request, who, "login")
    return token


@router.post(
    "/logout",
    status_code=204,
    responses={400: {"description": "An API key cannot log out; revoke it instead"}},
)
def logout(user: CurrentUser, conn: ConnDep, request: Request) -> None:
    """Revoke the token used for this request."""
    if user.token_hash is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "an API key cannot log out; revoke it with DELETE /api/v1/auth/api-keys/{id}",
        )
    auth.revoke_token(conn, user.token_hash)
    record_audit(conn, request, user, "logout")


class Me(BaseModel):
    name: str
    role: Role


@router.get("/me")
def me(user: AnyUser) -> Me:
    """Who the token belongs to."""
    return Me(name=user.name, role=user.role)


# --- users -------------------------------------------------------------------------------------


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=80, pattern=USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=200)
    role: Role


class UserPublic(BaseModel):
    id: int
    username: str
    role: Role
    disabled: bool = False
    created_at: datetime | None = None


class PasswordReset(BaseModel):
    password: str = Field(min_length=8, max_length=200)


class SessionsEnded(BaseModel):
    username: str
    sessions_ended: int


def _user_public(row: Row[Any]) -> UserPublic:
    return UserPublic(id=row.id, username=row.username, role=Role(row.role),
                      disabled=row.disabled, created_at=aware(row.created_at))  # fmt: skip


def _found_user(conn: ConnDep, username: str) -> Row[Any]:
    row = auth.find_user(conn, username)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username!r}")
    return row


@router.post("/users", status_code=201, responses={409: {"description": "User exists"}})
def create_user(body: UserCreate, user: AdminUser, conn: ConnDep, request: Request) -> UserPublic:
    """Add a user (admin)."""
    try:
        auth.create_user(conn, body.username, body.password, body.role, datetime.now(UTC))
    except UserExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    record_audit(conn, request, user, "user.create", body.username, role=body.role.value)
    return _user_public(_found_user(conn, body.username))


@router.get("/users")
def list_users(_user: AdminUser, conn: ConnDep) -> list[UserPublic]:
    """Every user (admin)."""
    return [_user_public(r) for r in auth.list_users(conn)]


@router.post(
    "/users/{username}/disable",
    responses={**NO_USER, 409: {"description": "It is the last enabled admin"}},
)
def disable_user(
    username: UserName, user: AdminUser, conn: ConnDep, request: Request
) -> SessionsEnded:
    """Disable a user (admin): no login, and every session ends now."""
    _found_user(conn, username)
    try:
        ended = auth.set_disabled(conn, username, True)
    except auth.LastAdminError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    record_audit(conn, request, user, "user.disable", username, sessions_ended=ended)
    return SessionsEnded(username=username, sessions_ended=ended)


@router.post("/users/{username}/enable", responses=NO_USER)
def enable_user(username: UserName, user: AdminUser, conn: ConnDep, request: Request) -> UserPublic:
    """Enable a disabled user again (admin)."""
    _found_user(conn, username)
    auth.set_disabled(conn, username, False)
    record_audit(conn, request, user, "user.enable", username)
    return _user_public(_found_user(conn, username))


@router.post("/users/{username}/password", responses=NO_USER)
def reset_password(
    username: UserName, body: PasswordReset, user: AdminUser, conn: ConnDep, request: Request
) -> SessionsEnded:
    """Set a new password (admin); every session of the user ends."""
    ended = auth.end_sessions(conn, _found_user(conn, username).username)
    auth.set_password(conn, username, body.password)
    record_audit(conn, request, user, "user.reset_password", username, sessions_ended=ended)
    return SessionsEnded(username=username, sessions_ended=ended)


@router.post("/users/{username}/end-sessions", responses=NO_USER)
def end_sessions(
    username: UserName, user: AdminUser, conn: ConnDep, request: Request
) -> SessionsEnded:
    """End every session of a user now (admin); their tokens stop working."""
    ended = auth.end_sessions(conn, _found_user(conn, username).username)
    record_audit(conn, request, user, "user.end_sessions", username, sessions_ended=ended)
    return SessionsEnded(username=username, sessions_ended=ended)


# --- API keys ----------------------------------------------------------------------------------


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    role: Role
    expires_at: datetime | None = Field(None, description="After this the key stops working.")


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    active: bool = Field(description="Neither revoked nor expired.")


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    role: Role
    expires_at: datetime | None = None
    key: str = Field(description="Shown once; send it as the X-API-Key header.")


def api_key_public(row: Row[Any], now: datetime) -> ApiKeyPublic:
    expires = aware(row.expires_at) if row.expires_at is not None else None
    return ApiKeyPublic(
        id=row.id, name=row.name, role=Role(row.role), created_by=row.created_by,
        created_at=aware(row.created_at), expires_at=expires, revoked=row.revoked,
        active=not row.revoked and (expires is None or expires > now),
    )  # fmt: skip


@router.post("/api-keys", status_code=201, responses={422: {"description": "Expiry in the past"}})
def create_api_key(
    body: ApiKeyCreate, user: AdminUser, conn: ConnDep, request: Request
) -> ApiKeyCreated:
    """Create an API key for automation (admin), optionally expiring."""
    now = datetime.now(UTC)
    expires = body.expires_at
    if expires is not None:
        expires = (expires if expires.tzinfo else expires.replace(tzinfo=UTC)).astimezone(UTC)
    try:
        key_id, key = auth.create_api_key(conn, body.name, body.role, user.name, now, expires)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    record_audit(conn, request, user, "api_key.create", body.name, role=body.role.value,
                 expires_at=expires.isoformat() if expires else None)  # fmt: skip
    return ApiKeyCreated(id=key_id, name=body.name, role=body.role, expires_at=expires, key=key)


@router.get("/api-keys")
def list_api_keys(_user: AdminUser, conn: ConnDep) -> list[ApiKeyPublic]:
    """Every API key, without the key itself (admin)."""
    now = datetime.now(UTC)
    return [api_key_public(r, now) for r in auth.list_api_keys(conn)]


@router.delete(
    "/api-keys/{key_id}", status_code=204, responses={404: {"description": "No such key"}}
)
def revoke_api_key(key_id: IdPath, user: AdminUser, conn: ConnDep, request: Request) -> None:
    """Revoke an API key (admin)."""
    if not auth.revoke_api_key(conn, key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such API key")
    record_audit(conn, request, user, "api_key.revoke", str(key_id))
