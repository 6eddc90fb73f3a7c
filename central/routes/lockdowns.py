"""Lockdowns (封控) and emergency releases: orders for a site or some of its gates, until ended.

Both reach gates inside their signed policy, so a gate applies them like any policy change:
at once when online, on reconnect when not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Row, select, update

from central import fleet
from central.deps import AdminUser, AnyUser, EngineDep, IdPath, IngestDep, record_audit
from central.fleet import OrderKind
from central.routes.policy import push
from central.store.tables import gates, lockdowns
from central.views import aware
from protocol import topics
from protocol.policy import LockdownMode

router = APIRouter(prefix="/api/v1", tags=["lockdowns"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such order"}}
GateId = Annotated[str, Field(pattern=topics.ID_PATTERN)]


class ReleaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(pattern=topics.ID_PATTERN, description="Site id.")
    gates: list[GateId] | None = Field(None, max_length=500, description="None: every gate.")
    reason: str = Field(min_length=1, max_length=200, description="Why, for the record.")


class LockdownCreate(ReleaseCreate):
    mode: LockdownMode = Field(description="residents_only, or full (only staff pass).")


class OrderPublic(BaseModel):
    id: int
    kind: OrderKind
    site: str
    gates: list[str] | None
    mode: LockdownMode | None
    reason: str
    started_at: datetime
    started_by: str
    ended_at: datetime | None
    ended_by: str | None
    gates_total: int = Field(description="Gates the order covers.")
    gates_pending: int = Field(description="Of those, gates not yet on their latest policy.")


def _pending(conn: Connection, row: Row[Any]) -> tuple[int, int]:
    covered = [
        g
        for g in conn.execute(select(gates).where(gates.c.site == row.site))
        if not row.gates or g.gate in row.gates
    ]
    versions = fleet.stored_versions(conn, [g.id for g in covered])
    pending = sum(1 for g in covered if versions[g.id]
                  and (g.status or {}).get("policy_version") != versions[g.id])  # fmt: skip
    return len(covered), pending


def _public(conn: Connection, row: Row[Any]) -> OrderPublic:
    total, pending = _pending(conn, row)
    return OrderPublic(
        id=row.id, kind=OrderKind(row.kind), site=row.site, gates=row.gates,
        mode=LockdownMode(row.mode) if row.mode else None, reason=row.reason,
        started_at=aware(row.started_at), started_by=row.started_by,
        ended_at=aware(row.ended_at) if row.ended_at else None, ended_by=row.ended_by,
        gates_total=total, gates_pending=pending,
    )  # fmt: skip


def _start(
    kind: OrderKind, body: ReleaseCreate, mode: LockdownMode | None, user: AdminUser,
    engine: EngineDep, ingest: IngestDep, request: Request,
) -> OrderPublic:  # fmt: skip
    now = datetime.now(UTC)
    with engine.begin() as conn:
        facts = {"gates": body.gates, "mode": mode.value if mode else None, "reason": body.reason}
        inserted = conn.execute(
            lockdowns.insert().values(
                kind=kind.value, site=body.site, started_at=now, started_by=user.name, **facts
            )
        ).inserted_primary_key
        assert inserted is not None
        order_id = int(inserted[0])
        record_audit(conn, request, user, f"{kind.value}.start", body.site, id=order_id, **facts)
    push(engine, ingest, now, site=body.site)
    return _get(engine, kind, order_id)


def _get(engine: EngineDep, kind: OrderKind, order_id: int) -> OrderPublic:
    with engine.connect() as conn:
        row = conn.execute(
            select(lockdowns).where(lockdowns.c.id == order_id, lockdowns.c.kind == kind.value)
        ).first()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such {kind.value}")
        return _public(conn, row)


def _end(
    kind: OrderKind, order_id: int, user: AdminUser, engine: EngineDep, ingest: IngestDep,
    request: Request,
) -> OrderPublic:  # fmt: skip
    order = _get(engine, kind, order_id)
    if order.ended_at is None:
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(
                update(lockdowns)
                .where(lockdowns.c.id == order_id)
                .values(ended_at=now, ended_by=user.name)
            )
            record_audit(conn, request, user, f"{kind.value}.end", order.site, id=order_id)
        push(engine, ingest, now, site=order.site)
    return _get(engine, kind, order_id)


def _list(engine: EngineDep, kind: OrderKind, active: bool) -> list[OrderPublic]:
    query = select(lockdowns).where(lockdowns.c.kind == kind.value).order_by(lockdowns.c.id)
    if active:
        query = query.where(lockdowns.c.ended_at.is_(None))
    with engine.connect() as conn:
        return [_public(conn, r) for r in conn.execute(query).all()]


ActiveOnly = Annotated[bool, Query(description="Only orders not yet ended.")]


@router.post("/lockdowns", status_code=201, responses={503: {}})
def start_lockdown(
    body: LockdownCreate, user: AdminUser, engine: EngineDep, ingest: IngestDep, request: Request
) -> OrderPublic:
    """Lock a site (or some of its gates) down; denials carry the reason `lockdown`."""
    return _start(OrderKind.LOCKDOWN, body, body.mode, user, engine, ingest, request)


@router.get("/lockdowns")
def list_lockdowns(
    engine: EngineDep, _user: AnyUser, active: ActiveOnly = False
) -> list[OrderPublic]:
    """Lockdowns, oldest first, with how many gates have not yet applied their policy."""
    return _list(engine, OrderKind.LOCKDOWN, active)


@router.delete("/lockdowns/{lockdown_id}", responses={**NOT_FOUND, 503: {}})
def end_lockdown(
    lockdown_id: IdPath, user: AdminUser, engine: EngineDep, ingest: IngestDep, request: Request
) -> OrderPublic:
    """End a lockdown (again: no change)."""
    return _end(OrderKind.LOCKDOWN, lockdown_id, user, engine, ingest, request)


@router.post("/releases", status_code=201, responses={503: {}})
def start_release(
    body: ReleaseCreate, user: AdminUser, engine: EngineDep, ingest: IngestDep, request: Request
) -> OrderPublic:
    """Emergency release: the gates hold their doors open until the release is ended."""
    return _start(OrderKind.RELEASE, body, None, user, engine, ingest, request)


@router.get("/releases")
def list_releases(
    engine: EngineDep, _user: AnyUser, active: ActiveOnly = False
) -> list[OrderPublic]:
    """Emergency releases, oldest first."""
    return _list(engine, OrderKind.RELEASE, active)


@router.delete("/releases/{release_id}", responses={**NOT_FOUND, 503: {}})
def end_release(
    release_id: IdPath, user: AdminUser, engine: EngineDep, ingest: IngestDep, request: Request
) -> OrderPublic:
    """End an emergency release: the gates lock again."""
    return _end(OrderKind.RELEASE, release_id, user, engine, ingest, request)
