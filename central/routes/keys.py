"""Signing keys: make, activate, retire; and the guided re-issue of passes of a key to retire."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Row, select

from central import keyring, pass_ops
from central.deps import AdminUser, EngineDep, IngestDep, SettingsDep, record_audit
from central.keyring import KeyPurpose, KeyringError, KeyState
from central.reissue import ReissuedPass, reissue_rows
from central.routes.policy import push
from central.store.tables import passes, revocations
from central.views import aware
from protocol.keyfiles import KeyFileError

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such key"}}


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: KeyPurpose = Field(KeyPurpose.PASS, description="pass (signs passes) or policy.")


class KeyPublic(BaseModel):
    key_id: str
    purpose: KeyPurpose
    public_key: str
    state: KeyState
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    gates_updated: int = Field(0, description="Gates sent a new policy by this change.")


class KeyPass(BaseModel):
    pass_id: str
    site: str
    holder: str
    kind: str
    valid_until: datetime


class ReissueReport(BaseModel):
    key_id: str
    signed_with: str = Field(description="The active key the new passes carry.")
    reissued: list[ReissuedPass] = Field(description="Old pass, new pass and its text.")


def _public(row: Row[Any], gates_updated: int = 0) -> KeyPublic:
    def when(value: datetime | None) -> datetime | None:
        return None if value is None else aware(value)

    return KeyPublic(
        key_id=row.key_id, purpose=KeyPurpose(row.purpose), public_key=row.public_key,
        state=KeyState(row.state), created_at=aware(row.created_at),
        activated_at=when(row.activated_at), retired_at=when(row.retired_at),
        gates_updated=gates_updated,
    )  # fmt: skip


def _key(conn: Connection, key_id: str) -> Row[Any]:
    row = keyring.get_key(conn, key_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such key")
    return row


@router.get("")
def list_keys(engine: EngineDep, _user: AdminUser) -> list[KeyPublic]:
    """Every signing key with its state."""
    with engine.connect() as conn:
        return [_public(r) for r in keyring.keys(conn)]


@router.post("", status_code=201)
def create_key(
    body: KeyCreate,
    user: AdminUser,
    engine: EngineDep,
    settings: SettingsDep,
    ingest: IngestDep,
    request: Request,
) -> KeyPublic:
    """Make a key in state `next`: gates are told to trust it; nothing is signed with it yet."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        key_id = keyring.new_key(conn, settings, body.purpose, now)
        record_audit(conn, request, user, "key.create", key_id, purpose=body.purpose.value)
    updated = push(engine, ingest, now)
    with engine.connect() as conn:
        return _public(_key(conn, key_id), updated)


def _transition(
    key_id: str,
    action: str,
    user: AdminUser,
    engine: EngineDep,
    ingest: IngestDep,
    request: Request,
) -> KeyPublic:
    now = datetime.now(UTC)
    change = keyring.activate if action == "activate" else keyring.retire
    with engine.begin() as conn:
        _key(conn, key_id)
        try:
            change(conn, key_id, now)
        except KeyringError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        record_audit(conn, request, user, f"key.{action}", key_id)
    updated = push(engine, ingest, now)
    with engine.connect() as conn:
        return _public(_key(conn, key_id), updated)


@router.post("/{key_id}/activate", responses={**NOT_FOUND, 409: {}})
def activate_key(
    key_id: str, user: AdminUser, engine: EngineDep, ingest: IngestDep, request: Request
) -> KeyPublic:
    """Sign with this key from now on; the one before stays trusted as `previous`."""
    return _transition(key_id, "activate", user, engine, ingest, request)


@router.post("/{key_id}/retire", responses={**NOT_FOUND, 409: {}})
def retire_key(
    key_id: str, user: AdminUser, engine: EngineDep, ingest: IngestDep, request: Request
) -> KeyPublic:
    """Remove the key from every gate's trust: its passes are denied `unknown_key` from then."""
    return _transition(key_id, "retire", user, engine, ingest, request)


def active_passes_of(conn: Connection, key_id: str, now: datetime) -> list[Row[Any]]:
    revoked = select(revocations.c.pass_id).where(revocations.c.active.is_(True))
    query = (
        select(passes)
        .where(passes.c.key_id == key_id, passes.c.valid_until > now)
        .where(passes.c.pass_id.not_in(revoked))
        .order_by(passes.c.site, passes.c.holder)
    )
    return list(conn.execute(query))


@router.get("/{key_id}/passes", responses=NOT_FOUND)
def key_passes(key_id: str, engine: EngineDep, _user: AdminUser) -> list[KeyPass]:
    """The active passes signed by this key: what must be re-issued before it is retired."""
    now = datetime.now(UTC)
    with engine.connect() as conn:
        _key(conn, key_id)
        return [
            KeyPass(
                pass_id=r.pass_id,
                site=r.site,
                holder=r.holder,
                kind=r.kind,
                valid_until=aware(r.valid_until),
            )
            for r in active_passes_of(conn, key_id, now)
        ]


@router.post("/{key_id}/reissue", responses={**NOT_FOUND, 409: {}, 503: {}})
def reissue_passes(
    key_id: str, user: AdminUser, engine: EngineDep, ingest: IngestDep, request: Request
) -> ReissueReport:
    """Re-issue every active pass of this key with the active pass key; revoke the old ones."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if _key(conn, key_id).state == KeyState.ACTIVE:
            raise HTTPException(status.HTTP_409_CONFLICT, "activate another key first")
        try:
            done, signer, versions = reissue_rows(
                conn, active_passes_of(conn, key_id, now), user, now
            )
        except KeyFileError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
        record_audit(conn, request, user, "key.reissue", key_id, passes=len(done))
    pass_ops.announce(ingest, versions)
    return ReissueReport(key_id=key_id, signed_with=signer, reissued=done)
