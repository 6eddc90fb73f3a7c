"""The console's session cookie and CSRF tokens, both keyed by `auth.secret`.

The cookie carries one of central's opaque session tokens (central/auth.py), HMAC-signed so a
tampered cookie is refused before the database is asked. CSRF tokens are derived from the
session (or, before login, from a nonce cookie), so nothing extra is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from fastapi import HTTPException, Request, Response, status
from sqlalchemy import Connection

from central import auth
from central.auth import Principal

SESSION_COOKIE = "menjin_session"
LOGIN_COOKIE = "menjin_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _mac(secret: str, purpose: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def _secret(request: Request) -> str:
    secret: str = request.app.state.settings.auth.secret
    return secret


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(request: Request, response: Response, token: str, ttl: timedelta) -> None:
    """Send the signed session cookie: HttpOnly, SameSite=Strict, Secure over HTTPS, expiring."""
    value = f"{token}.{_mac(_secret(request), 'session', token)}"
    response.set_cookie(
        SESSION_COOKIE, value, max_age=int(ttl.total_seconds()), httponly=True,
        samesite="strict", secure=_secure(request), path="/",
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path="/")


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def session_token(request: Request) -> str | None:
    """The token inside a correctly signed session cookie, or None."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or "." not in raw:
        return None
    token, mac = raw.rsplit(".", 1)
    if not hmac.compare_digest(mac, _mac(_secret(request), "session", token)):
        return None
    return token


def principal_from_cookie(request: Request, conn: Connection, now: datetime) -> Principal | None:
    """The caller by session cookie; an unsafe request must also carry the CSRF header."""
    token = session_token(request)
    if token is None:
        return None
    found = auth.principal_for_token(conn, token, now)
    unsafe = request.method in UNSAFE_METHODS
    if found is not None and unsafe and not csrf_ok(request, request.headers.get(CSRF_HEADER)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or wrong {CSRF_HEADER}")
    return found


def csrf_token(request: Request) -> str:
    """The CSRF token for this session (empty when there is none)."""
    token = session_token(request)
    return "" if token is None else _mac(_secret(request), "csrf", token)


def csrf_ok(request: Request, presented: str | None) -> bool:
    expected = csrf_token(request)
    return bool(expected and presented) and hmac.compare_digest(expected, presented or "")


def login_nonce(request: Request) -> str:
    """The pre-login nonce from its cookie, or a fresh one the caller must set."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)


def set_login_nonce(request: Request, response: Response, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict",
        secure=_secure(request), path="/",
    )  # fmt: skip


def login_csrf(request: Request, nonce: str) -> str:
    return _mac(_secret(request), "login", nonce)


def login_csrf_ok(request: Request, presented: str) -> bool:
    nonce = request.cookies.get(LOGIN_COOKIE)
    return bool(nonce) and hmac.compare_digest(login_csrf(request, nonce or ""), presented)
