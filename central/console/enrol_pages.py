"""A device-bound pass's one-time enrolment link in the console (admin): shown once, as a link
and a QR code, after issuing or renewing; revoked. Through the API's own enrol-link functions."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine

from central.auth import Principal
from central.console import office_data
from central.console.office import AdminForm
from central.console.render import page
from central.deps import EngineDep
from central.routes import enrol as enrol_api
from central.routes.passes import qr_image

router = APIRouter(include_in_schema=False)
NO_LINK: dict[str, Any] = {"url": None, "qr": None}


def with_link(
    request: Request, engine: Engine, user: Principal, pass_id: str, url: str, code: int = 201
) -> Response:
    """The pass page with its fresh link; the QR is inline, so the token is in no image URL."""
    found = office_data.pass_detail(engine, user, request, pass_id)
    png = base64.b64encode(qr_image(url, "png")).decode()
    enrol = {"url": url, "qr": f"data:image/png;base64,{png}"}
    return page(request, "pass.html", user, found, code, enrol=enrol, issued=True,
                links_revoked=None)  # fmt: skip


@router.post("/passes/{pass_id}/enrol-link")
def renew_link_form(request: Request, pass_id: str, engine: EngineDep, user: AdminForm) -> Response:
    """POST /api/v1/passes/{id}/enrol-link's own function: a fresh link; any earlier unused one
    stops working."""
    with engine.begin() as conn:
        made = enrol_api.new_link(pass_id, user, conn, request)
    return with_link(request, engine, user, pass_id, made.enrol_url)


@router.post("/passes/{pass_id}/enrol-link/revoke")
def revoke_link_form(
    request: Request, pass_id: str, engine: EngineDep, user: AdminForm
) -> Response:
    """DELETE /api/v1/passes/{id}/enrol-link's own function: no unused link works any more."""
    with engine.begin() as conn:
        done = enrol_api.revoke_link(pass_id, user, conn, request)
    return RedirectResponse(f"/passes/{pass_id}?links_revoked={done['revoked']}",
                            status.HTTP_303_SEE_OTHER)  # fmt: skip
