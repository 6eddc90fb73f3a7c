"""A device-bound pass's one-time enrolment link in the console (admin): shown once, as a link
and a QR code, on the pass page after issuing or renewing; revoked. Through the API's own
enrol-link functions."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import RedirectResponse

from central.console import session
from central.console.flash import Flashes
from central.console.office import AdminForm
from central.deps import EngineDep
from central.routes import enrol as enrol_api
from central.routes.passes import qr_image

router = APIRouter(include_in_schema=False)
NO_LINK: dict[str, Any] = {"url": None, "qr": None}


def show_once(request: Request, pass_id: str, url: str, issued: bool = False) -> Response:
    """Redirect to the pass page, which shows the fresh link once (post/redirect/get: a reload
    or Back asks for the page again, never issues or renews again); the link waits in the
    server's flashes, not in the URL."""
    token = session.session_token(request) or ""
    flashes: Flashes = request.app.state.flashes
    nonce = flashes.put(token, pass_id, url, datetime.now(UTC))
    query = urlencode({"issued": 1, "link": nonce} if issued else {"link": nonce})
    return RedirectResponse(f"/passes/{pass_id}?{query}", status.HTTP_303_SEE_OTHER)


def link_shown(request: Request, pass_id: str) -> dict[str, Any]:
    """The link a form post just made for this pass, taken from the flashes (so only once),
    as a link and a QR code; inline, so the token is in no image URL."""
    nonce = request.query_params.get("link", "")
    token = session.session_token(request)
    flashes: Flashes = request.app.state.flashes
    url = flashes.take(token, pass_id, nonce, datetime.now(UTC)) if token and nonce else None
    if not url:
        return NO_LINK
    png = base64.b64encode(qr_image(url, "png")).decode()
    return {"url": url, "qr": f"data:image/png;base64,{png}"}


@router.post("/passes/{pass_id}/enrol-link")
def renew_link_form(request: Request, pass_id: str, engine: EngineDep, user: AdminForm) -> Response:
    """POST /api/v1/passes/{id}/enrol-link's own function: a fresh link; any earlier unused one
    stops working."""
    with engine.begin() as conn:
        made = enrol_api.new_link(pass_id, user, conn, request)
    return show_once(request, pass_id, made.enrol_url)


@router.post("/passes/{pass_id}/enrol-link/revoke")
def revoke_link_form(
    request: Request, pass_id: str, engine: EngineDep, user: AdminForm
) -> Response:
    """DELETE /api/v1/passes/{id}/enrol-link's own function: no unused link works any more."""
    with engine.begin() as conn:
        done = enrol_api.revoke_link(pass_id, user, conn, request)
    return RedirectResponse(f"/passes/{pass_id}?links_revoked={done['revoked']}",
                            status.HTTP_303_SEE_OTHER)  # fmt: skip
