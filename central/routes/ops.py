"""Health, readiness, Prometheus metrics and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
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
    """The database answers and, when ingest runs, the broker is connected."""
    checks: dict[str, bool] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    if ingest is not None:
        checks["broker"] = ingest.connected.is_set()
    ready = all(checks.values())
    if not ready:
        response.status_code = 503
    return {"ready": ready, "checks": checks}


@router.get("/metrics", tags=["operations"], response_class=Response)
def metrics(request: Request, _user: AnyUser) -> Response:
    """Prometheus text format; scrape with an API key as the bearer token."""
    body = request.app.state.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def _utc(value: datetime) -> datetime:
    """UTC, as the column holds it (SQLite compares the digits); naive input is UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


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
    actor: Annotated[str | None, Query(max_length=80, description="Who, exactly.")] = None,
    action: Annotated[
        str | None, Query(max_length=60, description="What: `pass.read_text`, or `pass.` for all.")
    ] = None,
    since: Annotated[datetime | None, Query(description="At or after this time.")] = None,
    until: Annotated[datetime | None, Query(description="Before this time.")] = None,
) -> list[AuditEntry]:
    """Every write and every read of a pass's text: who, what, when, from where (newest first)."""
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(audit.c.id < before_id)
    if actor:
        query = query.where(audit.c.actor == actor)
    if action:
        column = audit.c.action
        query = query.where(column.startswith(action) if action.endswith(".") else column == action)
    if since is not None:
        query = query.where(audit.c.at >= _utc(since))
    if until is not None:
        query = query.where(audit.c.at < _utc(until))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [AuditEntry(**{**r, "at": aware(r["at"])}) for r in rows]
