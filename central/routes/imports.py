"""Bulk import in two steps: upload an XLSX or CSV -> preview every row -> confirm (admin).

Nothing is written until the confirm, and the confirm writes its rows in one transaction.
Re-importing the same sheet changes nothing: a person (site, holder, unit) who already has an
unrevoked pass is `unchanged`, or an `update` (phone in place; a new pass only where validity
changed, the old one revoked).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import Response
from nacl.signing import SigningKey
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Row

from central import pass_ops
from central.auth import Principal
from central.deps import AdminUser, EngineDep, IngestDep, SettingsDep, record_audit
from central.imports.messages import Problem, file_problem
from central.imports.pending import TTL, PendingImport, PendingImports
from central.imports.plan import Outcome, PlannedRow, check_rows, plan_rows
from central.imports.sheet import SheetError, read_sheet
from central.imports.template import template_xlsx
from central.pass_signing import PassCreate, sign_pass
from central.passes_csv import MAX_BYTES
from central.routes.passes import SigningKeyDep
from central.store import office_store, passes_store, sync_store
from central.views import aware
from protocol import topics
from protocol.epass import mask_name

UPLOAD_PATH = "/api/v1/imports"  # its body limit is the sheet uploads' (central/app.py)
router = APIRouter(prefix=UPLOAD_PATH, tags=["imports"])
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REISSUE_REASON = "re-issued by import"
CHANGED_SINCE_PREVIEW = "passes changed since the preview; upload the file again"
AUDIT_EXCLUDE = {"import_id", "passes", "revoked"}


class RowProblem(BaseModel):
    """One reason a row cannot be imported."""

    field: str | None = Field(description="The pass field at fault; null: the row as a whole.")
    column: str | None = Field(description="That field's header as the sheet writes it.")
    problem: Problem


class PreviewRow(BaseModel):
    row: int = Field(description="Spreadsheet row number; the header is row 1.")
    outcome: Outcome
    holder: str | None = Field(description="Full name (admins only see previews).")
    unit: str | None
    site: str | None
    pass_id: str | None = Field(description="The person's current pass, for update/unchanged.")
    changes: list[str] = Field(description="Fields that differ from the current pass (update).")
    reissue: bool = Field(description="An update that signs a new pass (validity changed).")
    errors: list[RowProblem]


class ImportPreview(BaseModel):
    """What confirming would do; `rows` lists every non-blank row in sheet order."""

    import_id: str = Field(description="POST /api/v1/imports/{import_id}/confirm to write.")
    expires_at: datetime
    format: str = Field(description="xlsx or csv.")
    sha256: str
    counts: dict[Outcome, int]
    ignored_columns: list[str] = Field(description="Headers no pass field takes; not imported.")
    rows: list[PreviewRow]


class ImportResult(BaseModel):
    import_id: str
    created: int
    updated: int = Field(description="Rows updated: phone changed and/or re-issued.")
    reissued: int = Field(description="Of those, rows whose new validity needed a new pass.")
    unchanged: int
    skipped: int = Field(description="Rows with errors, not imported.")
    passes: list[str] = Field(description="Ids of the passes signed, in sheet order.")
    revoked: list[str] = Field(description="Ids of passes replaced by re-issue.")


def _pending(request: Request) -> PendingImports:
    pending: PendingImports = request.app.state.imports
    return pending


def _sheet_error(exc: SheetError) -> HTTPException:
    found = file_problem(exc.key, exc.params)
    return HTTPException(exc.status, found.model_dump())


def _fits_check(key: SigningKey, user: Principal, now: datetime) -> Callable[[PassCreate], None]:
    """Raises ValueError for a pass too large for a QR code, as signing it would.

    Past PassCreate's checks, signing fails only on size, and the size depends only on the byte
    lengths of site, masked name and gates (every other field is fixed width): so one signature
    per such shape answers for all its rows (signing every row cost 0.75 s in 5,000).
    """
    fitting: set[tuple[int, ...]] = set()

    def fits(body: PassCreate) -> None:
        texts = (body.site, mask_name(body.holder), *body.gates)
        shape = tuple(len(t.encode()) for t in texts)
        if shape not in fitting:
            sign_pass(body, key, user, now)
            fitting.add(shape)

    return fits


def _preview_row(p: PlannedRow) -> PreviewRow:
    body = p.checked.body
    return PreviewRow(
        row=p.checked.row, outcome=p.outcome, holder=body and body.holder,
        unit=body and body.unit, site=body and body.site,
        pass_id=p.existing.pass_id if p.existing is not None else None,
        changes=list(p.changes), reissue=p.reissue,
        errors=[RowProblem(field=i.field, column=i.column, problem=i.problem)
                for i in p.checked.issues],
    )  # fmt: skip


@router.get(
    "/template.xlsx", response_class=Response, responses={200: {"content": {XLSX_TYPE: {}}}}
)
def import_template(
    _user: AdminUser,
    settings: SettingsDep,
    site: Annotated[
        str | None, Query(pattern=topics.ID_PATTERN, description="The example row's site.")
    ] = None,
) -> Response:
    """An XLSX with the Chinese headers an import reads and one example row."""
    site = site or next(iter(settings.sites), "hutong-12")
    data = template_xlsx(site, ZoneInfo(settings.site(site).timezone), datetime.now(UTC))
    headers = {"Content-Disposition": 'attachment; filename="passes-template.xlsx"'}
    return Response(data, media_type=XLSX_TYPE, headers=headers)


@router.post(
    "",
    status_code=201,
    responses={
        413: {"description": "Too many bytes, rows or unpacked bytes"},
        415: {"description": "Not an XLSX or CSV file"},
        422: {"description": "A required column is missing or repeated"},
        503: {"description": "No signing key"},
    },
)
def upload_import(
    file: Annotated[UploadFile, File(description="The .xlsx or .csv file.")],
    user: AdminUser,
    key: SigningKeyDep,
    engine: EngineDep,
    request: Request,
) -> ImportPreview:
    """Read and check the sheet and show what confirming would do; writes nothing (admin)."""
    data = file.file.read(MAX_BYTES + 1)  # a sync route: this runs in the threadpool
    try:
        sheet = read_sheet(data, file.filename or "")
    except SheetError as exc:
        raise _sheet_error(exc) from exc
    now = datetime.now(UTC)
    checked = check_rows(sheet, _fits_check(key, user, now))
    with engine.connect() as conn:
        planned = plan_rows(conn, checked)
    item = PendingImport(
        import_id=PendingImports.new_id(), owner=user.name, expires_at=now + TTL,
        sha256=hashlib.sha256(data).hexdigest(), rows=checked,
        signature=[p.signature() for p in planned],
    )  # fmt: skip
    _pending(request).put(item, now)
    counts = Counter(p.outcome for p in planned)
    return ImportPreview(
        import_id=item.import_id, expires_at=item.expires_at, format=sheet.format,
        sha256=item.sha256, counts={o: counts.get(o, 0) for o in Outcome},
        ignored_columns=sheet.ignored_columns, rows=[_preview_row(p) for p in planned],
    )  # fmt: skip


def _apply(conn: Connection, planned: list[PlannedRow], key: SigningKey, user: Principal,
           now: datetime) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:  # fmt: skip
    """Write the plan: (new pass rows, replaced pass ids, last revocation version per site)."""
    signed: list[dict[str, Any]] = []
    replaced: list[Row[Any]] = []
    for p in planned:
        body = p.checked.body
        if body is None or p.outcome in (Outcome.UNCHANGED, Outcome.ERROR):
            continue
        if p.outcome is Outcome.NEW or p.reissue:
            signed.append(sign_pass(body, key, user, now))
        if p.existing is not None and p.reissue:
            replaced.append(p.existing)
        elif p.existing is not None:
            office_store.set_phone(conn, p.existing.pass_id, body.phone)
    passes_store.insert_passes(conn, signed)
    # One list version for all of them: gates fetch a single delta.
    until = [(r.pass_id, int(aware(r.valid_until).timestamp())) for r in replaced]
    version = sync_store.revoke_many(conn, until, REISSUE_REASON, now, by=user.name)
    versions = {} if version is None else dict.fromkeys({r.site for r in replaced}, version)
    return signed, [r.pass_id for r in replaced], versions


@router.post(
    "/{import_id}/confirm",
    responses={
        404: {"description": "No such pending import (expired, confirmed, or another user's)"},
        409: {"description": "The stored passes changed since the preview; upload again"},
        503: {"description": "No signing key"},
    },
)
def confirm_import(
    import_id: str,
    user: AdminUser,
    key: SigningKeyDep,
    engine: EngineDep,
    ingest: IngestDep,
    request: Request,
) -> ImportResult:
    """Write the previewed rows in one transaction; rows with errors are skipped (admin)."""
    now = datetime.now(UTC)
    pending = _pending(request)
    item = pending.take(import_id, user.name, now)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such import; upload the file again")
    try:
        with engine.begin() as conn:
            planned = plan_rows(conn, item.rows)
            if [p.signature() for p in planned] != item.signature:
                raise HTTPException(status.HTTP_409_CONFLICT, CHANGED_SINCE_PREVIEW)
            signed, revoked, versions = _apply(conn, planned, key, user, now)
            result = _result(item.import_id, planned, signed, revoked)
            record_audit(conn, request, user, "pass.import", item.import_id, sha256=item.sha256,
                         **result.model_dump(exclude=AUDIT_EXCLUDE))  # fmt: skip
    except HTTPException:
        raise
    except Exception:
        pending.put(item, now)  # not written: the same preview may be confirmed again
        raise
    pass_ops.announce(ingest, versions)
    return result


def _result(import_id: str, planned: list[PlannedRow], signed: list[dict[str, Any]],
            revoked: list[str]) -> ImportResult:  # fmt: skip
    counts = Counter(p.outcome for p in planned)
    return ImportResult(
        import_id=import_id, created=counts[Outcome.NEW], updated=counts[Outcome.UPDATE],
        reissued=len(revoked), unchanged=counts[Outcome.UNCHANGED],
        skipped=counts[Outcome.ERROR], passes=[s["pass_id"] for s in signed], revoked=revoked,
    )  # fmt: skip
