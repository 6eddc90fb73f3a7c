"""How events look to API clients, the CSV export and the live stream: one shape for all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from protocol.messages import GateEvent


def snapshot_url(event_id: int, snapshot: str | None) -> str | None:
    return None if snapshot is None else f"/api/v1/events/{event_id}/snapshot.jpg"


def event_view(
    event_id: int, site: str, gate: str, event: GateEvent, received_at: str
) -> dict[str, Any]:
    """An event from a freshly stored GateEvent; `received_at` in ISO form (one transaction's
    events share it, so it is formatted once)."""
    skew = event.details.get("clock_skew_s")
    return {
        "event_id": event_id,
        "site": site,
        "gate": gate,
        "epoch": event.epoch,
        "seq": event.seq,
        "type": event.type.value,
        "at": event.at.isoformat(),
        "received_at": received_at,
        "granted": event.granted,
        "reason": event.reason,
        "pass_id": event.pass_id,
        "temperature_c": event.temperature_c,
        "clock_skew_s": skew if isinstance(skew, int | float) else None,
        "snapshot_url": snapshot_url(event_id, event.snapshot),
        "details": event.details,
    }


def event_row_view(row: Any) -> dict[str, Any]:
    """An event from a row of the events table (gate time shown with the gate's offset)."""
    at = aware(row.at).astimezone(timezone(timedelta(minutes=row.at_offset_min)))
    return {
        "event_id": row.id,
        "site": row.site,
        "gate": row.gate,
        "epoch": row.epoch,
        "seq": row.seq,
        "type": row.type,
        "at": at.isoformat(),
        "received_at": aware(row.received_at).isoformat(),
        "granted": row.granted,
        "reason": row.reason,
        "pass_id": row.pass_id,
        "temperature_c": row.temperature_c,
        "clock_skew_s": row.clock_skew_s,
        "snapshot_url": snapshot_url(row.id, row.snapshot),
        "details": row.details,
    }


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading "'".
    Every CSV/XLSX export goes through this; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; central writes only UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
