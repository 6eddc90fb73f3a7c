"""Console login and logout: the API's own login (limits included) behind a form and a cookie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import OAuth2PasswordRequestForm

from central import auth
from central.console import session
from central.console.i18n import words_for
from central.console.render import remember_lang, render_html
from central.deps import ConnDep, EngineDep, SettingsDep, record_audit
from central.routes import auth as auth_api

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site, never another origin."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _login_form(request: Request, error: str | None, code: int = 200) -> Response:
    nonce = session.login_nonce(request)
    html = render_html(request, "login.html", None, error=error,
                   login_csrf=session.login_csrf(request, nonce),
                   next=_safe_next(request.query_params.get("next")))  # fmt: skip
    response = HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})
    session.set_login_nonce(request, response, nonce)
    remember_lang(request, response, words_for(request))
    return response


@router.get("/login")
def login_page(request: Request) -> Response:
    return _login_form(request, None)


@router.post("/login")
async def login(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    """Check the form's CSRF token, then log in exactly as POST /api/v1/auth/token does."""
    if not session.login_csrf_ok(request, csrf):
        return _login_form(request, "login.error.expired", status.HTTP_403_FORBIDDEN)
    form = OAuth2PasswordRequestForm(username=username, password=password)
    try:
        token = await auth_api.login(form, engine, settings, request)
    except HTTPException as exc:
        key = "login.error.limited" if exc.status_code == 429 else "login.error.wrong"
        return _login_form(request, key, exc.status_code)
    response = RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
    ttl = timedelta(seconds=settings.auth.token_ttl_s)
    session.set_session(request, response, token.access_token, ttl)
    return response


@router.post("/logout")
def logout(
    request: Request, conn: ConnDep, csrf: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    """Revoke the session's token (the form's CSRF token proves it came from our page)."""
    if not session.csrf_ok(request, csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    token = session.session_token(request)
    if token is not None:
        who = auth.principal_for_token(conn, token, datetime.now(UTC))
        if who is not None and who.token_hash is not None:
            auth.revoke_token(conn, who.token_hash)
            record_audit(conn, request, who, "logout")
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    session.clear_session(response)
    return response
