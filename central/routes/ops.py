"""Health, readiness, Prometheus metrics and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import select, text

from central.deps import AdminUser, AnyUser, EngineDep, IdQuery, IngestDep
from central.store.tables import audit
from central.views import aware

router = APIRouter()


@router.get("/healthz", tags=["operations"])
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], responses={503: {"description": "Not ready"}})
def readyz(engine: EngineDep, ingest: IngestDep, response: Response) -> dict[str, Any]:
    """The database answers and, when ingest runs, the broker is connected and has granted the
    events subscription (a replica whose subscription was refused hears no gate)."""
    checks: dict[str, bool] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    if ingest is not None:
        checks["broker"] = ingest.connected.is_set()
        checks["events_subscription"] = ingest.ready()
    ready = all(checks.values())
    if not ready:
        response.status_code = 503
    return {"ready": ready, "checks": checks}


@router.get("/metrics", tags=["operations"], response_class=Response)
def metrics(request: Request, _user: AnyUser) -> Response:
    """Prometheus text format; scrape with an API key as the bearer token."""
    body = request.app.state.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    remote: str | None
    details: dict[str, Any]


@router.get("/api/v1/audit", tags=["operations"])
def audit_log(
    engine: EngineDep,
    _user: AdminUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: IdQuery = None,
) -> list[AuditEntry]:
    """Every write: who, what, when, from where (newest first)."""
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(audit.c.id < before_id)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [AuditEntry(**{**r, "at": aware(r["at"])}) for r in rows]
