"""Alerts: they stay open until a person acknowledges or resolves them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import select, update

from central import visibility
from central.auth import Role
from central.deps import AnyUser, ConnDep, EngineDep, GuardUser, IdPath, record_audit
from central.store.tables import alerts
from central.views import aware

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

AlertKind = Literal[
    "fever", "door_forced", "door_held_open", "unlock_failure", "device_fault", "gate_offline",
    "missing_events",
]  # fmt: skip
AlertState = Literal["open", "acked", "resolved"]


class AlertPublic(BaseModel):
    id: int
    site: str
    gate: str
    kind: str
    state: AlertState
    opened_at: datetime
    event_id: int | None
    details: dict[str, Any]
    acked_by: str | None
    acked_at: datetime | None
    ack_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolve_note: str | None


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


def _change(
    conn: ConnDep, alert_id: int, allowed_from: tuple[str, ...], values: dict[str, Any], role: Role
) -> AlertPublic:
    row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
    if row["state"] not in allowed_from:
        raise HTTPException(status.HTTP_409_CONFLICT, f"alert is already {row['state']}")
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(values))
    changed = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().one()
    return _public(changed, role)


@router.post("/{alert_id}/ack", responses={404: {}, 409: {"description": "Already resolved"}})
def ack_alert(
    alert_id: IdPath, body: AlertNote, user: GuardUser, conn: ConnDep, request: Request
) -> AlertPublic:
    """Someone has seen it and is on it."""
    now = datetime.now(UTC)
    values = {"state": "acked", "acked_by": user.name, "acked_at": now, "ack_note": body.note}
    out = _change(conn, alert_id, ("open", "acked"), values, user.role)
    record_audit(conn, request, user, "alert.ack", str(alert_id), note=body.note)
    return out


@router.post("/{alert_id}/resolve", responses={404: {}, 409: {"description": "Already resolved"}})
def resolve_alert(
    alert_id: IdPath, body: AlertNote, user: GuardUser, conn: ConnDep, request: Request
) -> AlertPublic:
    """It is dealt with. A new occurrence will open a new alert."""
    now = datetime.now(UTC)
    values = {"state": "resolved", "resolved_by": user.name, "resolved_at": now,
              "resolve_note": body.note, "dedupe_key": None}  # fmt: skip
    out = _change(conn, alert_id, ("open", "acked"), values, user.role)
    record_audit(conn, request, user, "alert.resolve", str(alert_id), note=body.note)
    return out
