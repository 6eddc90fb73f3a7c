"""Login, logout, users and API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from central import auth
from central.auth import Role, UserExistsError
from central.deps import (
    AdminUser,
    AnyUser,
    ConnDep,
    CurrentUser,
    EngineDep,
    IdPath,
    SettingsDep,
    record_audit,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, no secret
    expires_at: datetime
    role: Role


@router.post(
    "/token",
    responses={
        401: {"description": "Wrong user name or password"},
        429: {"description": "Slow down"},
    },
)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    engine: EngineDep,
    settings: SettingsDep,
    request: Request,
) -> Token:
    """OAuth2 password flow: returns a bearer token."""
    now = datetime.now(UTC)
    remote = request.client.host if request.client else "?"
    # Its own transaction, so a failure is recorded even though this request then fails.
    with engine.begin() as conn:
        limited = auth.too_many_failures(conn, form.username, now)
        who = None if limited else auth.check_login(conn, form.username, form.password, remote, now)
    if limited:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed logins; try again in 15 minutes",
            headers={"Retry-After": "900"},
        )
    if who is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "wrong user name or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    ttl = timedelta(seconds=settings.auth.token_ttl_s)
    with engine.begin() as conn:
        token = auth.issue_token(conn, who.name, ttl, now)
        record_audit(conn, request, who, "login")
    return Token(access_token=token, expires_at=now + ttl, role=who.role)


@router.post("/logout", status_code=204)
def logout(user: CurrentUser, conn: ConnDep, request: Request) -> None:
    """Revoke the token used for this request."""
    if user.token_hash is not None:
        auth.revoke_token(conn, user.token_hash)
    record_audit(conn, request, user, "logout")


class Me(BaseModel):
    name: str
    role: Role


@router.get("/me")
def me(user: AnyUser) -> Me:
    """Who the token belongs to."""
    return Me(name=user.name, role=user.role)


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=200)
    role: Role


class UserPublic(BaseModel):
    id: int
    username: str
    role: Role


@router.post("/users", status_code=201, responses={409: {"description": "User exists"}})
def create_user(body: UserCreate, user: AdminUser, conn: ConnDep, request: Request) -> UserPublic:
    """Add a user (admin)."""
    try:
        new_id = auth.create_user(conn, body.username, body.password, body.role, datetime.now(UTC))
    except UserExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    record_audit(conn, request, user, "user.create", body.username, role=body.role.value)
    return UserPublic(id=new_id, username=body.username, role=body.role)


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    role: Role


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    role: Role
    key: str = Field(description="Shown once; send it as the X-API-Key header.")


@router.post("/api-keys", status_code=201)
def create_api_key(
    body: ApiKeyCreate, user: AdminUser, conn: ConnDep, request: Request
) -> ApiKeyCreated:
    """Create an API key for automation (admin)."""
    key_id, key = auth.create_api_key(conn, body.name, body.role, user.name, datetime.now(UTC))
    record_audit(conn, request, user, "api_key.create", body.name, role=body.role.value)
    return ApiKeyCreated(id=key_id, name=body.name, role=body.role, key=key)


@router.delete(
    "/api-keys/{key_id}", status_code=204, responses={404: {"description": "No such key"}}
)
def revoke_api_key(key_id: IdPath, user: AdminUser, conn: ConnDep, request: Request) -> None:
    """Revoke an API key (admin)."""
    if not auth.revoke_api_key(conn, key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such API key")
    record_audit(conn, request, user, "api_key.revoke", str(key_id))
