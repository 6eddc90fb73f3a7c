"""Serves the phone page, its service worker and its modules; the data comes from the API.

Every page under /phone/ is the same shell (no per-request data), so the service worker can
serve any of them offline; the page reads its pass from IndexedDB.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

# No inline script or style, nothing from elsewhere, and the one-time token in the URL is
# never sent on as a Referer.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none';"
    " base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _shell(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "phone.html", headers=HEADERS)


@router.get("/phone/")
def phone_page(request: Request) -> HTMLResponse:
    """The live code of the pass this phone enrolled."""
    return _shell(request)


@router.get("/phone/enrol/{token}")
def enrol_page(request: Request, token: str) -> HTMLResponse:
    """The one-time link's page; its script enrols this phone (the token is read there)."""
    return _shell(request)


@router.get("/phone/sw.js")
def service_worker() -> Response:
    return FileResponse(
        HERE / "static" / "sw.js",
        media_type="text/javascript",
        headers={**HEADERS, "Service-Worker-Allowed": "/phone/"},
    )


def install(app: FastAPI) -> None:
    """Add the phone page's routes and static modules to the app."""
    app.include_router(router)
    app.mount("/phone/static", StaticFiles(directory=HERE / "static"), name="phone-static")
