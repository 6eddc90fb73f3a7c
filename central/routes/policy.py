"""Gate policy: site defaults and per-gate overrides, each change signed and pushed to gates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, Row, select

from central import fleet
from central.deps import AdminUser, AnyUser, EngineDep, IdPath, IngestDep, record_audit
from central.fleet import PolicyFields, Publisher
from central.ingest import Ingest
from central.store.tables import gate_policies as gate_policies_table
from central.store.tables import gates
from protocol import topics
from protocol.keyfiles import KeyFileError
from protocol.policy import PolicyDocument, SignedPolicy

router = APIRouter(prefix="/api/v1", tags=["policy"])
SitePath = Annotated[str, Path(pattern=topics.ID_PATTERN, description="Site id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such gate"}}


class GatePolicyPublic(BaseModel):
    gate_id: int
    site: str
    gate: str
    fields: dict[str, Any] = Field(description="This gate's own overrides.")
    site_fields: dict[str, Any] = Field(description="The site's policy it inherits.")
    version: int = Field(description="Latest signed version (0: none signed yet).")
    applied_version: int | None = Field(description="The version the gate last reported.")
    document: PolicyDocument | None = Field(description="The latest signed document.")


class GateVersion(BaseModel):
    gate_id: int
    gate: str
    version: int
    applied_version: int | None
    online: bool


class SitePolicyPublic(BaseModel):
    site: str
    fields: dict[str, Any]
    gates: list[GateVersion]
    pending: int = Field(description="Gates that have not yet reported the latest version.")


def publisher(ingest: Ingest | None) -> Publisher | None:
    return None if ingest is None else ingest.link


def push(engine: Engine, ingest: Ingest | None, now: datetime, **scope: Any) -> int:
    """Re-sign and publish the gates in scope; returns how many got a new version."""
    try:
        return len(fleet.refresh_gates(engine, publisher(ingest), now, **scope))
    except KeyFileError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


def _gate_row(conn: Connection, gate_id: int) -> Row[Any]:
    row = conn.execute(select(gates).where(gates.c.id == gate_id)).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such gate")
    return row


def _applied(row: Row[Any]) -> int | None:
    value = (row.status or {}).get("policy_version")
    return value if isinstance(value, int) else None


def _document(stored: str | None) -> PolicyDocument | None:
    if stored is None:
        return None
    return PolicyDocument.model_validate_json(SignedPolicy.model_validate_json(stored).document)


def gate_policies(conn: Connection, gate_ids: list[int]) -> list[GatePolicyPublic]:
    """These gates' policies, in their order (unknown ids left out): one query for the gates
    and their own rows, one for their sites' policies, however many gates a page lists."""
    if not gate_ids:
        return []
    own = gate_policies_table
    query = select(gates, own.c.fields.label("own_fields"), own.c.version.label("signed"),
                   own.c.document).outerjoin(own, own.c.gate_id == gates.c.id)  # fmt: skip
    rows = {r.id: r for r in conn.execute(query.where(gates.c.id.in_(gate_ids)))}
    sites = fleet.sites_fields(conn, sorted({r.site for r in rows.values()}))
    return [_public(rows[i], sites[rows[i].site]) for i in gate_ids if i in rows]


def _public(row: Row[Any], site_fields: dict[str, Any]) -> GatePolicyPublic:
    return GatePolicyPublic(
        gate_id=row.id, site=row.site, gate=row.gate, fields=dict(row.own_fields or {}),
        site_fields=site_fields, version=int(row.signed or 0), applied_version=_applied(row),
        document=_document(row.document),
    )  # fmt: skip


def gate_policy(conn: Connection, gate_id: int) -> GatePolicyPublic:
    found = gate_policies(conn, [gate_id])
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such gate")
    return found[0]


def site_policy(conn: Connection, site: str) -> SitePolicyPublic:
    rows = conn.execute(select(gates).where(gates.c.site == site).order_by(gates.c.gate)).all()
    versions = fleet.stored_versions(conn, [r.id for r in rows])
    listed = [
        GateVersion(
            gate_id=r.id,
            gate=r.gate,
            version=versions[r.id],
            applied_version=_applied(r),
            online=r.online,
        )
        for r in rows
    ]
    pending = sum(1 for g in listed if g.version and g.applied_version != g.version)
    fields = fleet.site_fields(conn, site)
    return SitePolicyPublic(site=site, fields=fields, gates=listed, pending=pending)


@router.get("/gates/{gate_id}/policy", responses=NOT_FOUND)
def get_gate_policy(gate_id: IdPath, engine: EngineDep, _user: AnyUser) -> GatePolicyPublic:
    """The gate's overrides, the site policy it inherits and its latest signed document."""
    with engine.connect() as conn:
        return gate_policy(conn, gate_id)


@router.put("/gates/{gate_id}/policy", responses={**NOT_FOUND, 503: {}})
def put_gate_policy(
    gate_id: IdPath,
    body: PolicyFields,
    user: AdminUser,
    engine: EngineDep,
    ingest: IngestDep,
    request: Request,
) -> GatePolicyPublic:
    """Replace the gate's overrides; a changed policy is signed and pushed to the gate."""
    with engine.begin() as conn:
        row = _gate_row(conn, gate_id)
        fleet.set_gate_fields(conn, gate_id, body, user.name)
        record_audit(conn, request, user, "policy.gate", f"{row.site}/{row.gate}",
                     fields=body.set_fields())  # fmt: skip
    push(engine, ingest, datetime.now(UTC), gate_ids=[gate_id])
    with engine.connect() as conn:
        return gate_policy(conn, gate_id)


@router.get("/sites/{site}/policy")
def get_site_policy(site: SitePath, engine: EngineDep, _user: AnyUser) -> SitePolicyPublic:
    """The site's policy and, per gate, the latest version and the one it reported."""
    with engine.connect() as conn:
        return site_policy(conn, site)


@router.put("/sites/{site}/policy", responses={503: {}})
def put_site_policy(
    site: SitePath,
    body: PolicyFields,
    user: AdminUser,
    engine: EngineDep,
    ingest: IngestDep,
    request: Request,
) -> SitePolicyPublic:
    """Replace the site's policy; every gate of the site whose policy changed gets a new one."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        fleet.set_site_fields(conn, site, body, user.name, now)
        record_audit(conn, request, user, "policy.site", site, fields=body.set_fields())
    push(engine, ingest, now, site=site)
    with engine.connect() as conn:
        return site_policy(conn, site)
