"""What the office's pages share: the admin check, and the user behind a posted form.

A page's GET uses the API's own caller check (central/console/pages.py `console_user`); a form
post proves itself with the CSRF token in its `csrf` field instead of the API's header.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from central import auth
from central.auth import Principal
from central.console import session
from central.console.pages import ConsoleUser, LoginRequiredError
from central.deps import EngineDep, allowed

FORBIDDEN = "the office's pages are for admins"


def _admin(user: Principal) -> Principal:
    if not allowed(user):  # admin only: the API's one role rule with no other role admitted
        raise HTTPException(status.HTTP_403_FORBIDDEN, FORBIDDEN)
    return user


def admin_page(user: ConsoleUser) -> Principal:
    return _admin(user)


async def admin_form(request: Request, engine: EngineDep) -> Principal:
    """The session's admin, when the posted form carries the session's CSRF token."""
    form = await request.form()  # Starlette keeps it: the route's Form()/File() read it again
    if not session.csrf_ok(request, str(form.get(session.CSRF_FIELD) or "")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    token = session.session_token(request)
    with engine.connect() as conn:
        found = token and auth.principal_for_token(conn, token, datetime.now(UTC))
    if not found:
        raise LoginRequiredError
    return _admin(found)


AdminPage = Annotated[Principal, Depends(admin_page)]
AdminForm = Annotated[Principal, Depends(admin_form)]
