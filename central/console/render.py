"""Rendering a console page: Jinja2 templates, the words, the user, static URLs, data twins."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from central.auth import Principal, Role
from central.console import fleet_data, session
from central.console.i18n import LANG_COOKIE, Words, words_for
from central.console.static_files import static_url
from central.deps import allowed
from central.routes.lockdowns import OrderPublic

HERE = Path(__file__).parent


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static_url
    env.filters["pretty_json"] = lambda value: json.dumps(value, ensure_ascii=False, indent=2)
    return env


def can(user: Principal | None) -> Callable[[str], bool]:
    """What the page may offer this user: the API's own role rule, by action."""
    needs = {"ack": (Role.GUARD,), "open": (Role.GUARD,), "office": ()}

    def check(action: str) -> bool:
        return user is not None and allowed(user, *needs[action])

    return check


def render_html(request: Request, template: str, user: Principal | None, **data: Any) -> str:
    words = words_for(request)
    data.setdefault("poll_url", page_url(request, None))
    return environment().get_template(template).render(
        t=words, user=user, can=can(user), csrf=session.csrf_token(request),
        now=datetime.now(UTC), path=request.url.path, **data,
    )  # fmt: skip


def page_url(request: Request, home: str | None) -> str:
    """The GET address of what is shown, for its live parts to poll and its forms to return
    to: the page's own `home` when it was rendered for a form post (`/fleet` for a 422 at
    `/fleet/sites/x/policy`, which only takes POST), else the path asked for."""
    if home:
        return home
    return request.url.path if request.method == "GET" else "/"


def page(
    request: Request, template: str, user: Principal | None, data: dict[str, Any],
    status_code: int = 200, *, home: str | None = None,
    orders: dict[str, list[OrderPublic]] | None = None, **extra: Any,
) -> Response:  # fmt: skip
    """The page as HTML, or its data twin as JSON when the path ends in `.json`; every page
    carries the banner of lockdowns and emergency releases in force (`orders`, when the view
    has read them already). `home`: see page_url."""
    if request.url.path.endswith(".json"):
        return JSONResponse(jsonable_encoder(data), status_code)
    if orders is None and user is not None:
        orders = fleet_data.banner(request.app.state.engine, user)
    html = render_html(request, template, user, orders=orders, poll_url=page_url(request, home),
                       **data, **extra)  # fmt: skip
    response = HTMLResponse(html, status_code)
    remember_lang(request, response, words_for(request))
    response.headers["Cache-Control"] = "no-store"
    return response


def fragment(request: Request, template: str, user: Principal, **data: Any) -> HTMLResponse:
    """A partial, for the live view to swap in."""
    html = render_html(request, template, user, **data)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def remember_lang(request: Request, response: Response, words: Words) -> None:
    if request.query_params.get("lang") == words.lang:
        response.set_cookie(LANG_COOKIE, words.lang, max_age=365 * 86400, samesite="lax")
