"""Phone enrolment: the one-time link's API, and central's clock for the phone's offset.

The enrol endpoints take no credentials: the one-time token in the path is the credential
(24 random bytes, stored only as a hash, unusable once used, expired or revoked).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from central import pass_ops
from central.auth import Principal, Role
from central.deps import AdminUser, ConnDep, EngineDep, IngestDep, record_audit
from central.enrolment import LINK_TTL, DeviceKeyIn, bind, enrol_link
from central.routes.passes import NO_STORE, NOT_FOUND, SigningKeyDep
from central.store import enrol_store, passes_store
from central.store.enrol_store import Link, LinkState
from central.views import aware
from protocol.epass import HolderKind
from protocol.livecode import SLOT_S

router = APIRouter(tags=["enrolment"])
NO_LINK: dict[int | str, dict[str, Any]] = {404: {"description": "No such link"}}
GONE: dict[int | str, dict[str, Any]] = {410: {"description": "Link used, expired or revoked"}}
PHONE = Principal("enrol-link", Role.VIEWER)  # the audit trail's actor for a phone


class ServerTime(BaseModel):
    unix_ms: int = Field(description="Central's clock, milliseconds since 1970 UTC.")


class LinkPublic(BaseModel):
    """What the phone page shows before enrolling: whose pass, and whether the link works."""

    state: LinkState
    expires_at: datetime
    display_name: str
    kind: HolderKind
    unit: str | None


class Enrolled(BaseModel):
    """The device-bound pass for the phone that enrolled, with what its page displays."""

    pass_id: str
    text: str = Field(description="The version 2 pass text; the phone appends its live proof.")
    display_name: str
    kind: HolderKind
    unit: str | None
    site: str
    valid_from: datetime
    valid_until: datetime
    slot_s: int = Field(description="Seconds per live-code slot.")
    server_time_ms: int


class NewLink(BaseModel):
    enrol_url: str
    expires_in_s: int


@router.get("/api/v1/time")
def server_time(response: Response) -> ServerTime:
    """Central's clock, for a phone measuring its offset (public; no data)."""
    response.headers.update(NO_STORE)
    return ServerTime(unix_ms=time.time_ns() // 1_000_000)


def _link(conn: ConnDep, token: str, now: datetime) -> Link:
    link = enrol_store.find_link(conn, token, now)
    if link is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such enrolment link")
    return link


@router.get("/api/v1/enrol/{token}", responses=NO_LINK)
def show_link(token: str, conn: ConnDep, response: Response) -> LinkPublic:
    """The link's state and whose pass it is (masked name only; no credentials: the token)."""
    response.headers.update(NO_STORE)
    now = datetime.now(UTC)
    link = _link(conn, token, now)
    row = passes_store.get_pass(conn, link.pass_id)
    assert row is not None  # the foreign key keeps every link's pass
    state = LinkState.REVOKED if row.revoked else link.state
    return LinkPublic(state=state, expires_at=aware(link.expires_at),
                      display_name=row.display_name, kind=row.kind, unit=row.unit)  # fmt: skip


@router.post("/api/v1/enrol/{token}", status_code=201, responses={**NO_LINK, **GONE})
def enrol(
    token: str,
    body: DeviceKeyIn,
    engine: EngineDep,
    ingest: IngestDep,
    key: SigningKeyDep,
    request: Request,
) -> Enrolled:
    """Bind the pass to this phone's public key, once; a second use is refused (410). The
    site's gates hear of it after commit, and verify its issuer signature ahead of its first
    live code (docs/protocol.md, SyncDelta.passes)."""
    now = datetime.now(UTC)
    # Our own transaction: gates must not fetch the delta before it is committed.
    with engine.begin() as conn:
        link = _link(conn, token, now)
        row = passes_store.get_pass(conn, link.pass_id)
        assert row is not None
        if link.state is not LinkState.OPEN or row.revoked or aware(row.valid_until) <= now:
            raise HTTPException(status.HTTP_410_GONE, f"this link is {link.state.value}")
        try:
            device = body.device_key()
            text = bind(row, device, key)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        version = enrol_store.use_link(conn, link, now, device.alg.value, device.public.hex(), text)
        if version is None:
            raise HTTPException(status.HTTP_410_GONE, "this link is used")
        record_audit(conn, request, PHONE, "pass.enrol", row.pass_id, alg=device.alg.value)
    pass_ops.announce(ingest, {row.site: version})
    return Enrolled(
        pass_id=row.pass_id, text=text, display_name=row.display_name, kind=row.kind,
        unit=row.unit, site=row.site, valid_from=aware(row.valid_from),
        valid_until=aware(row.valid_until), slot_s=SLOT_S, server_time_ms=time.time_ns() // 10**6,
    )  # fmt: skip


@router.post("/api/v1/passes/{pass_id}/enrol-link", status_code=201, responses=NOT_FOUND)
def new_link(pass_id: str, user: AdminUser, conn: ConnDep, request: Request) -> NewLink:
    """A fresh one-time link for a device-bound pass not yet enrolled (admin); 409 otherwise."""
    row = passes_store.get_pass(conn, pass_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such pass")
    if row.text:
        raise HTTPException(status.HTTP_409_CONFLICT, "the pass is not waiting for a phone")
    url = enrol_link(conn, request, pass_id, user.name, datetime.now(UTC))
    record_audit(conn, request, user, "pass.enrol_link", pass_id)
    return NewLink(enrol_url=url, expires_in_s=int(LINK_TTL.total_seconds()))


@router.delete("/api/v1/passes/{pass_id}/enrol-link", responses=NOT_FOUND)
def revoke_link(pass_id: str, user: AdminUser, conn: ConnDep, request: Request) -> dict[str, int]:
    """Revoke the pass's unused enrolment links (admin)."""
    if passes_store.get_pass(conn, pass_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such pass")
    revoked = enrol_store.revoke_links(conn, pass_id, datetime.now(UTC))
    record_audit(conn, request, user, "pass.enrol_link.revoke", pass_id, revoked=revoked)
    return {"revoked": revoked}
