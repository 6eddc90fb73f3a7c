"""The guards' web console, served by central itself at `/` (same origin as the API)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

IMPORT_FORM_PATH = "/passes/import"  # the office's upload form: the imports' body limit


async def _to_login(request: Request, _exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def mount(app: FastAPI) -> None:
    """Add the console's pages, its static files and its login redirect to the app."""
    # Imported here: central.deps imports this package's session module.
    from central.console import login, pages
    from central.console.static_files import STATIC_DIR, CachedStatic

    app.include_router(login.router)
    app.include_router(pages.router)
    from central.console import (  # admin
        enrol_pages,
        fleet_pages,
        gate_pages,
        import_pages,
        keys_pages,
        office_pages,
        user_pages,
    )

    app.include_router(import_pages.router)  # before /passes/{pass_id}
    app.include_router(office_pages.router)
    app.include_router(enrol_pages.router)
    app.include_router(gate_pages.router)
    app.include_router(fleet_pages.router)
    app.include_router(keys_pages.router)
    app.include_router(user_pages.router)
    app.mount("/static", CachedStatic(directory=STATIC_DIR), name="static")
    app.add_exception_handler(pages.LoginRequiredError, _to_login)
