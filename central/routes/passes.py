"""Passes: issue, list, show, revoke, QR images, CSV import (what a pass to issue is, and its
signing, live in central/pass_signing.py)."""

from __future__ import annotations

import hashlib
import io
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response
from nacl.signing import SigningKey
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)
from sqlalchemy import Connection, Row

from central import keyring, visibility
from central.auth import Principal
from central.deps import (
    AdminUser,
    AnyUser,
    ConnDep,
    EngineDep,
    IngestDep,
    record_audit,
    require,
)
from central.enrolment import enrol_link
from central.keyring import KeyPurpose
from central.pass_signing import PassCreate, sign_pass
from central.passes_csv import (
    CsvFormatError,
    CsvTooLargeError,
    CsvUpload,
    RowError,
    check_rows,
    read_rows,
)
from central.store import passes_store, sync_store
from central.store.passes_store import PassQuery, PassStatus
from central.views import aware
from central.visibility import Data
from protocol.epass import (
    HolderKind,
)
from protocol.keyfiles import KeyFileError

log = logging.getLogger(__name__)
PREFIX = "/api/v1/passes"
IMPORT_PATH = PREFIX + "/import"
router = APIRouter(prefix=PREFIX, tags=["passes"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such pass"}}
NO_STORE = {"Cache-Control": "no-store"}


class PassPublic(BaseModel):
    """An issued pass. Fields a role may not see are null (central/visibility.py): the pass
    text and QR address for admins only, like the full name, phone and person; unit and kind
    for admins and guards; the masked name for everyone."""

    pass_id: str
    site: str
    holder: str | None = Field(description="Full name.")
    display_name: str = Field(description="The masked name printed in the pass.")
    kind: HolderKind | None
    unit: str | None
    phone: str | None
    person_id: int | None = Field(description="The person the pass was issued to.")
    valid_from: datetime
    valid_until: datetime
    gates: list[str]
    hours: str | None
    days: str | None
    max_uses: int
    key_id: str
    text: str | None = Field(description="The pass text (the QR code's content): opens the gate.")
    issued_at: datetime
    issued_by: str
    status: PassStatus
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    qr_url: str | None


class PassIssued(PassPublic):
    """The issue response: the pass, and for a device-bound one its one-time enrolment link."""

    enrol_url: str | None = Field(description="The phone's one-time link; null: not device-bound.")


class PassPage(BaseModel):
    items: list[PassPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200)


class ImportReport(BaseModel):
    imported: int
    errors: list[RowError]
    passes: list[str] = Field(description="Ids of the imported passes, in file order.")


def get_signing_key(engine: EngineDep) -> SigningKey:
    """The keyring's active pass key, read per request so an activation takes effect at once."""
    try:
        with engine.connect() as conn:
            return keyring.active_signing_key(conn, KeyPurpose.PASS)
    except KeyFileError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


SigningKeyDep = Annotated[SigningKey, Depends(get_signing_key)]
TextReader = Annotated[Principal, Depends(require(*visibility.roles(Data.PASS_TEXT)))]


def _status(row: Row[Any], now: datetime) -> PassStatus:
    if row.revoked:
        return PassStatus.REVOKED
    return PassStatus.EXPIRED if aware(row.valid_until) <= now else PassStatus.ACTIVE


def _public(row: Row[Any], now: datetime, user: Principal) -> PassPublic:
    fields = dict(row._mapping)
    for name in ("valid_from", "valid_until", "issued_at", "revoked_at"):
        fields[name] = fields[name] and aware(fields[name])
    if not fields.pop("revoked"):  # a lifted revocation leaves its row behind
        fields.update(revoked_at=None, revoked_by=None, revoke_reason=None)
    fields.update(status=_status(row, now), qr_url=f"/api/v1/passes/{row.pass_id}/qr.png")
    return PassPublic(**visibility.redact(user.role, "PassPublic", fields))


def _audit_text_read(
    conn: Connection, request: Request, user: Principal, pass_ids: list[str], how: str
) -> None:
    """The pass text is a bearer credential: every read of it leaves an audit line."""
    if pass_ids and visibility.sees(user.role, Data.PASS_TEXT):
        target = pass_ids[0] if len(pass_ids) == 1 else None
        record_audit(conn, request, user, "pass.read_text", target, via=how,
                     **({"pass_ids": pass_ids} if target is None else {}))  # fmt: skip


def _found(row: Row[Any] | None) -> Row[Any]:
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such pass")
    return row


@router.post("", status_code=201, responses={503: {"description": "No signing key"}})
def issue_pass(
    body: PassCreate, user: AdminUser, conn: ConnDep, key: SigningKeyDep, request: Request
) -> PassIssued:
    """Sign and store a pass (admin); 422 also when it would not fit a version 10-M QR code."""
    now = datetime.now(UTC)
    try:
        stored = sign_pass(body, key, user, now)
    except ValueError as exc:
        detail = [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc
    passes_store.insert_passes(conn, [stored])
    record_audit(conn, request, user, "pass.issue", stored["pass_id"], site=body.site,
                 kind=body.kind.value, valid_until=body.valid_until.isoformat())  # fmt: skip
    issued = _public(_found(passes_store.get_pass(conn, stored["pass_id"])), now, user)
    url = (
        enrol_link(conn, request, stored["pass_id"], user.name, now) if body.device_bound else None
    )
    return PassIssued(**issued.model_dump(), enrol_url=url)


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    try:
        return passes_store.parse_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "bad cursor") from exc


@router.get("")
def list_passes(
    conn: ConnDep,
    user: AnyUser,
    request: Request,
    q: Annotated[
        str | None,
        Query(
            max_length=120,
            description="Masked name, id prefix, and what the role may see of holder and unit.",
        ),
    ] = None,
    site: str | None = None,
    kind: HolderKind | None = None,
    pass_status: Annotated[PassStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> PassPage:
    """Search passes, newest issued first, a page at a time."""
    if kind is not None and not visibility.sees(user.role, Data.HOLDER_KIND):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} may not filter by kind")
    now = datetime.now(UTC)
    query = PassQuery(
        q=q.strip() if q else None,
        q_columns=visibility.pass_search_columns(user.role),
        site=site,
        kind=kind.value if kind else None,
        status=pass_status,
        after=_after(cursor),
        limit=limit + 1,
    )
    rows = passes_store.search_passes(conn, query, now)
    more = len(rows) > limit
    rows = rows[:limit]
    page = PassPage(
        items=[_public(r, now, user) for r in rows],
        next_cursor=passes_store.cursor_after(rows[-1]) if more else None,
    )
    _audit_text_read(conn, request, user, [p.pass_id for p in page.items], "list")
    return page


@router.get("/{pass_id}", responses=NOT_FOUND)
def show_pass(pass_id: str, conn: ConnDep, user: AnyUser, request: Request) -> PassPublic:
    """One pass (its text for admins only, audited)."""
    shown = _public(_found(passes_store.get_pass(conn, pass_id)), datetime.now(UTC), user)
    _audit_text_read(conn, request, user, [shown.pass_id], "detail")
    return shown


@router.post("/{pass_id}/revoke", responses=NOT_FOUND)
def revoke_pass(
    pass_id: str,
    body: RevokeRequest,
    user: AdminUser,
    engine: EngineDep,
    ingest: IngestDep,
    request: Request,
) -> PassPublic:
    """Revoke a pass (admin; again updates the reason); the site's gates hear after commit."""
    now = datetime.now(UTC)
    # Our own transaction: gates must not fetch the delta before it is committed.
    with engine.begin() as conn:
        row = _found(passes_store.get_pass(conn, pass_id))
        until = int(aware(row.valid_until).timestamp())
        version = sync_store.revoke(conn, row.pass_id, body.reason, now, until=until, by=user.name)
        record_audit(conn, request, user, "pass.revoke", row.pass_id,
                     reason=body.reason, version=version)  # fmt: skip
        row = _found(passes_store.get_pass(conn, pass_id))
    if ingest is not None:
        try:
            ingest.announce(row.site, version)
        except Exception:
            # Committed already; gates catch up at their next sync (each reconnect asks).
            log.warning("could not announce revocation version %s", version, exc_info=True)
    return _public(row, now, user)


def _qr(conn: Connection, pass_id: str, kind: str, user: Principal, request: Request) -> bytes:
    row = _found(passes_store.get_pass(conn, pass_id))
    _audit_text_read(conn, request, user, [row.pass_id], f"qr.{kind}")
    if not row.text:
        raise HTTPException(status.HTTP_409_CONFLICT, "the pass waits for its phone to enrol")
    return qr_image(row.text, kind)


def qr_image(text: str, kind: str) -> bytes:
    """A QR code (error correction M) as the pass QRs and the console's enrol links draw it."""
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind=kind, scale=8, border=4)
    return out.getvalue()


@router.get(
    "/{pass_id}/qr.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **NOT_FOUND},
)
def pass_qr_png(pass_id: str, conn: ConnDep, user: TextReader, request: Request) -> Response:
    """The pass as a PNG QR code (error correction M); admin only, audited."""
    png = _qr(conn, pass_id, "png", user, request)
    return Response(png, media_type="image/png", headers=NO_STORE)


@router.get(
    "/{pass_id}/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **NOT_FOUND},
)
def pass_qr_svg(pass_id: str, conn: ConnDep, user: TextReader, request: Request) -> Response:
    """The pass as an SVG QR code (error correction M); admin only, audited."""
    svg = _qr(conn, pass_id, "svg", user, request)
    return Response(svg, media_type="image/svg+xml", headers=NO_STORE)


@router.post(
    IMPORT_PATH.removeprefix(PREFIX),
    responses={
        413: {"description": "Too many bytes or rows"},
        415: {"description": "Neither multipart nor a CSV body"},
        503: {"description": "No signing key"},
    },
)
def import_passes(
    user: AdminUser, data: CsvUpload, conn: ConnDep, key: SigningKeyDep, request: Request
) -> ImportReport:
    """Issue passes from a CSV (admin).

    Columns: site, holder, kind, valid_from, valid_until (required) and gates (split on ';' or
    '|'), hours, days, max_uses, unit, phone. Every row is checked and every fault reported by
    row and column; the good rows are imported together in one transaction even when other rows
    fail, so fix and re-upload only the rows listed in `errors`. A missing or unknown column, or
    an undecodable file, rejects the whole file (422); over 5 MB or 10,000 rows is 413.
    """
    try:
        rows = read_rows(data)
    except CsvTooLargeError as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from exc
    except CsvFormatError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    now = datetime.now(UTC)
    issued, errors = check_rows(
        rows, lambda fields: sign_pass(PassCreate.model_validate(fields), key, user, now)
    )
    passes_store.insert_passes(conn, issued)
    record_audit(conn, request, user, "pass.import", None, imported=len(issued),
                 rejected_rows=len({e.row for e in errors}),
                 sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
    ids = [r["pass_id"] for r in issued]
    return ImportReport(imported=len(issued), errors=errors, passes=ids)
