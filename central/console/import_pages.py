"""The office's bulk import (admin): upload an XLSX or CSV -> preview every row's outcome ->
confirm, through POST /api/v1/imports and its confirm's own functions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Request, Response, UploadFile

from central.auth import Principal
from central.console.office import AdminForm, AdminPage
from central.console.render import page
from central.deps import EngineDep, IngestDep
from central.imports.messages import Problem
from central.routes import imports as imports_api
from central.routes.passes import get_signing_key

router = APIRouter(include_in_schema=False)
HOME = "/passes/import"  # its GET address, also for the pages its form posts render


def _problem(exc: HTTPException) -> Problem:
    """A file-level refusal as a catalog key (the API's detail), or its plain words."""
    detail: Any = exc.detail
    if isinstance(detail, dict) and "key" in detail:
        return Problem.model_validate(detail)
    return Problem(key="import.error.rejected", params={"reason": str(detail)}, message=str(detail))


@router.get(HOME)
def import_page(request: Request, user: AdminPage) -> Response:
    """The upload form and the template's download link."""
    return page(request, "import.html", user, {"preview": None, "result": None, "problem": None})


@router.post("/passes/import")
def upload_form(
    request: Request,
    engine: EngineDep,
    user: AdminForm,
    file: Annotated[UploadFile, File()],
) -> Response:
    """Read and check the sheet; show what confirming would do (nothing is written)."""
    key = get_signing_key(engine)
    try:
        preview = imports_api.upload_import(file, user, key, engine, request)
    except HTTPException as exc:
        return _refused(request, user, exc)
    body = {"preview": preview, "result": None, "problem": None}
    return page(request, "import.html", user, body, home=HOME)


def _refused(request: Request, user: Principal, exc: HTTPException) -> Response:
    """The import page with the API's refusal in words, under the API's status code."""
    if exc.status_code >= 500:
        raise exc
    body = {"preview": None, "result": None, "problem": _problem(exc)}
    response = page(request, "import.html", user, body, home=HOME)
    response.status_code = exc.status_code
    return response


@router.post("/passes/import/{import_id}/confirm")
def confirm_form(
    request: Request,
    import_id: str,
    engine: EngineDep,
    ingest: IngestDep,
    user: AdminForm,
) -> Response:
    """Write the previewed rows in one transaction."""
    key = get_signing_key(engine)
    try:
        result = imports_api.confirm_import(import_id, user, key, engine, ingest, request)
    except HTTPException as exc:
        return _refused(request, user, exc)
    body = {"preview": None, "result": result, "problem": None}
    return page(request, "import.html", user, body, home=HOME)
