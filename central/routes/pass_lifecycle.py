"""A pass after issue: re-issue it (lost card), and which gates have applied its revocation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from central import pass_ops
from central.deps import AdminUser, AnyUser, ConnDep, EngineDep, IngestDep, record_audit
from central.routes.passes import PassPublic, SigningKeyDep, _found, _public
from central.store import office_store, passes_store
from central.views import aware

router = APIRouter(prefix="/api/v1/passes", tags=["passes"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such pass"}}


class ReissueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        "re-issued", min_length=1, max_length=200, description="The old pass's revoke reason."
    )


class Reissued(BaseModel):
    new: PassPublic = Field(description="The new pass: same holder and validity, a new id.")
    old: PassPublic = Field(description="The replaced pass, now revoked.")


class GateApplied(BaseModel):
    """One gate of the pass's site and whether its cache holds the pass's revocation."""

    gate: str
    online: bool
    last_seen: datetime | None
    cache_version: int | None = Field(description="Revocation list version the gate reported.")
    applied: bool | None = Field(
        description="True: the gate has the revocation; false: not yet; null: pass not revoked."
    )


class RevocationState(BaseModel):
    pass_id: str
    revoked: bool
    version: int | None = Field(description="List version of the revocation; null: not revoked.")
    gates: list[GateApplied]


@router.post(
    "/{pass_id}/reissue",
    status_code=201,
    responses={**NOT_FOUND, 409: {"description": "The pass has expired"}},
)
def reissue_pass(
    pass_id: str,
    user: AdminUser,
    engine: EngineDep,
    ingest: IngestDep,
    key: SigningKeyDep,
    request: Request,
    body: ReissueRequest | None = None,
) -> Reissued:
    """A new pass (new id) for the same holder and validity; the old one is revoked (admin)."""
    reason = (body or ReissueRequest()).reason
    now = datetime.now(UTC)
    with engine.begin() as conn:  # committed before the gates are told
        old = _found(passes_store.get_pass(conn, pass_id))
        if aware(old.valid_until) <= now:
            raise HTTPException(status.HTTP_409_CONFLICT, "pass has expired; issue a new one")
        new = pass_ops.issue(conn, pass_ops.body_of(old), key, user, now)
        version = None if old.revoked else pass_ops.revoke_replaced(conn, old, reason, user, now)
        record_audit(conn, request, user, "pass.reissue", old.pass_id,
                     new_pass=new["pass_id"], reason=reason, version=version)  # fmt: skip
        old_row = _found(passes_store.get_pass(conn, old.pass_id))
        new_row = _found(passes_store.get_pass(conn, new["pass_id"]))
    if version is not None:
        pass_ops.announce(ingest, {old.site: version})
    return Reissued(new=_public(new_row, now, user), old=_public(old_row, now, user))


@router.get("/{pass_id}/gates", responses=NOT_FOUND)
def revocation_at_gates(pass_id: str, conn: ConnDep, _user: AnyUser) -> RevocationState:
    """Per gate of the pass's site: has it applied the revocation (its reported cache version)?"""
    row = _found(passes_store.get_pass(conn, pass_id))
    version = office_store.revocation_version(conn, row.pass_id)
    gates = []
    for gate in office_store.site_gates(conn, row.site):
        held = (gate.status or {}).get("cache_version")
        held = held if isinstance(held, int) else None
        applied = None if version is None else held is not None and held >= version
        gates.append(GateApplied(gate=gate.gate, online=gate.online, cache_version=held,
                                 last_seen=gate.last_seen and aware(gate.last_seen),
                                 applied=applied))  # fmt: skip
    return RevocationState(
        pass_id=row.pass_id, revoked=version is not None, version=version, gates=gates
    )
