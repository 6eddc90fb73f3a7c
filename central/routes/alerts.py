"""Alerts: they stay open until a person acknowledges or resolves them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select, update

from central import visibility
from central.auth import Role
from central.deps import (
    AnyUser,
    EngineDep,
    GuardUser,
    IdPath,
    IngestDep,
    record_audit,
)
from central.live import broadcast
from central.store.tables import alerts
from central.views import aware
from protocol.live import AlertKind, LiveAlert, live_message

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


class AlertPublic(LiveAlert):
    """An alert as the API lists it; the same model the live stream carries."""


class AlertNote(BaseModel):
    note: str = Field("", max_length=2000, description="What was done or seen.")


def _public(row: Any, role: Role) -> AlertPublic:
    data = dict(row)
    data.pop("dedupe_key", None)
    for key in ("opened_at", "acked_at", "resolved_at"):
        if data[key] is not None:
            data[key] = aware(data[key])
    return AlertPublic(**visibility.redact(role, "AlertPublic", data))


@router.get("")
def list_alerts(
    engine: EngineDep,
    user: AnyUser,
    state: Annotated[
        Literal["open", "acked", "resolved", "unresolved", "all"], Query()
    ] = "unresolved",
    kind: AlertKind | None = None,
    site: str | None = None,
    gate: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertPublic]:
    """Alerts, newest first; by default everything not yet resolved."""
    query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
    if state == "unresolved":
        query = query.where(alerts.c.state != "resolved")
    elif state != "all":
        query = query.where(alerts.c.state == state)
    for column, value in ((alerts.c.kind, kind), (alerts.c.site, site), (alerts.c.gate, gate)):
        if value is not None:
            query = query.where(column == value)
    with engine.connect() as conn:
        return [_public(r, user.role) for r in conn.execute(query).mappings()]


def announce(request: Request, ingest: IngestDep, alert: AlertPublic) -> None:
    """Put an alert's new state on the live stream, so every open console sees it at once."""
    broadcast(ingest, request.app.state.hub, [live_message("alert", alert)])


def _change(
    conn: Connection,
    alert_id: int,
    allowed_from: tuple[str, ...],
    values: dict[str, Any],
    role: Role,
) -> AlertPublic:
    row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
    if row["state"] not in allowed_from:
        raise HTTPException(status.HTTP_409_CONFLICT, f"alert is already {row['state']}")
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(values))
    changed = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().one()
    return _public(changed, role)


def _change_and_announce(
    engine: EngineDep,
    request: Request,
    ingest: IngestDep,
    user: GuardUser,
    alert_id: int,
    action: str,
    values: dict[str, Any],
) -> AlertPublic:
    """Change the alert in its own transaction, then tell every console (only once committed,
    so a console that re-reads the alerts on hearing of it sees the new state)."""
    note = values.get("ack_note", values.get("resolve_note"))
    with engine.begin() as conn:
        out = _change(conn, alert_id, ("open", "acked"), values, user.role)
        record_audit(conn, request, user, f"alert.{action}", str(alert_id), note=note)
    announce(request, ingest, out)
    return out


@router.post("/{alert_id}/ack", responses={404: {}, 409: {"description": "Already resolved"}})
def ack_alert(
    alert_id: IdPath,
    body: AlertNote,
    user: GuardUser,
    engine: EngineDep,
    request: Request,
    ingest: IngestDep,
) -> AlertPublic:
    """Someone has seen it and is on it."""
    values = {"state": "acked", "acked_by": user.name, "acked_at": datetime.now(UTC),
              "ack_note": body.note}  # fmt: skip
    return _change_and_announce(engine, request, ingest, user, alert_id, "ack", values)


@router.post("/{alert_id}/resolve", responses={404: {}, 409: {"description": "Already resolved"}})
def resolve_alert(
    alert_id: IdPath,
    body: AlertNote,
    user: GuardUser,
    engine: EngineDep,
    request: Request,
    ingest: IngestDep,
) -> AlertPublic:
    """It is dealt with. A new occurrence will open a new alert."""
    values = {"state": "resolved", "resolved_by": user.name, "resolved_at": datetime.now(UTC),
              "resolve_note": body.note, "dedupe_key": None}  # fmt: skip
    return _change_and_announce(engine, request, ingest, user, alert_id, "resolve", values)
