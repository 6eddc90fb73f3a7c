"""Events: filtered and paged, as CSV, their snapshots, and the live stream (SSE)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import Engine, Select, or_, select

from central import visibility
from central.auth import Principal, Role
from central.deps import MAX_ID, AnyUser, EngineDep, IdPath, require
from central.live import LiveHub
from central.store.tables import events, snapshots
from central.views import csv_cell, event_row_view
from central.visibility import Data
from protocol.messages import EventType, LiveMessage

router = APIRouter(prefix="/api/v1/events", tags=["events"])
HEARTBEAT_S = 15.0
REPLAY_LIMIT = 1000
RESUME_OVERLAP = timedelta(seconds=2)


class EventPublic(BaseModel):
    event_id: int
    site: str
    gate: str
    epoch: int
    seq: int
    type: str
    at: datetime
    received_at: datetime
    granted: bool | None
    reason: str | None
    pass_id: str | None
    temperature_c: float | None
    clock_skew_s: float | None
    snapshot_url: str | None
    details: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: str | None


class EventFilter(BaseModel):
    """The selection shared by the list, the CSV export and the stream."""

    site: str | None = None
    gate: str | None = None
    type: EventType | None = None
    pass_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        for column, value in (
            (events.c.site, self.site),
            (events.c.gate, self.gate),
            (events.c.type, self.type.value if self.type else None),
            (events.c.pass_id, self.pass_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if self.since is not None:
            query = query.where(events.c.at >= _utc(self.since))
        if self.until is not None:
            query = query.where(events.c.at < _utc(self.until))
        return query

    def matches(self, item: LiveMessage) -> bool:
        if self.site is not None and item.site != self.site:
            return False
        if self.gate is not None and item.gate != self.gate:
            return False
        if item.kind != "event":
            return self.type is None and self.pass_id is None
        data = item.data
        return (self.type is None or data.get("type") == self.type.value) and (
            self.pass_id is None or data.get("pass_id") == self.pass_id
        )


Filter = Annotated[EventFilter, Depends()]
SnapshotViewer = Annotated[Principal, Depends(require(*visibility.roles(Data.SNAPSHOT)))]


def shown(role: Role, view: dict[str, Any]) -> dict[str, Any]:
    """An event as this role may see it."""
    return visibility.redact(role, "EventPublic", view)


def _utc(value: datetime) -> datetime:
    """Times without an offset are UTC; stored times are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _page(engine: Engine, flt: EventFilter, before: int | None, limit: int) -> list[Any]:
    query = flt.apply(select(events)).order_by(events.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(events.c.id < before)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


@router.get("", responses={422: {"description": "Bad filter or cursor"}})
def list_events(
    engine: EngineDep,
    user: AnyUser,
    flt: Filter,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    """Events, newest first."""
    before = None
    if cursor is not None:
        if not cursor.isdigit() or int(cursor) > MAX_ID:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "bad cursor")
        before = int(cursor)
    rows = _page(engine, flt, before, limit)
    items = [EventPublic(**shown(user.role, event_row_view(r))) for r in rows]
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return EventPage(items=items, next_cursor=next_cursor)


CSV_COLUMNS = [
    "event_id", "site", "gate", "epoch", "seq", "type", "at", "received_at", "granted",
    "reason", "pass_id", "temperature_c", "clock_skew_s", "snapshot_url",
]  # fmt: skip


@router.get(".csv", response_class=StreamingResponse)
def events_csv(engine: EngineDep, user: AnyUser, flt: Filter) -> StreamingResponse:
    """The same selection as CSV, streamed page by page; text that a spreadsheet would take
    for a formula (= + - @, tab, CR first) is prefixed with '."""

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        before = None
        while True:
            page = _page(engine, flt, before, 1000)
            for r in page:
                view = shown(user.role, event_row_view(r))
                writer.writerow([csv_cell(view[c]) for c in CSV_COLUMNS])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            if len(page) < 1000:
                return
            before = page[-1].id

    headers = {"Content-Disposition": 'attachment; filename="events.csv"'}
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    engine: EngineDep,
    user: AnyUser,
    flt: Filter,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-Sent Events: new events, gate status changes and alerts; resumes after
    Last-Event-ID (events stored meanwhile are replayed first)."""
    hub: LiveHub = request.app.state.hub
    sub = hub.subscribe()
    resume = None
    if last_event_id and last_event_id.isdigit() and int(last_event_id) <= MAX_ID:
        resume = int(last_event_id)
    backlog = await asyncio.to_thread(_replay, engine, flt, resume) if resume is not None else []

    async def gen() -> AsyncIterator[str]:
        # Replicas commit and publish in their own order, so live ids are not monotonic: skip
        # only what the replay already sent, never "everything below the highest id seen".
        replayed = {item["event_id"] for item in backlog}
        try:
            yield "retry: 2000\n\n"
            for item in backlog:
                yield _sse("event", shown(user.role, item), item["event_id"])
            while not await request.is_disconnected():
                try:
                    live = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if live is None or sub.overflowed:
                    return  # server stopping, or a client too slow: it reconnects and resumes
                if not flt.matches(live):
                    continue
                if live.kind == "event" and live.id is not None:
                    if live.id in replayed:
                        continue
                    yield _sse("event", shown(user.role, live.data), live.id)
                else:
                    yield _sse(live.kind, {"site": live.site, "gate": live.gate, "id": live.id,
                                           **live.data}, None)  # fmt: skip
        finally:
            hub.unsubscribe(sub)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(gen(), media_type="text/event-stream", headers=headers)


def _replay(engine: Engine, flt: EventFilter, after: int) -> list[dict[str, Any]]:
    """Events after `after`, and any lower id stored around or after it.

    With several replicas a lower id can commit after a higher one the client already saw; so
    the replay also covers ids stored within RESUME_OVERLAP of that event. A client may see an
    event twice (same id) but never misses one.
    """
    with engine.connect() as conn:
        seen_at = conn.execute(select(events.c.received_at).where(events.c.id == after)).scalar()
        newer = events.c.id > after
        if seen_at is not None:
            newer = or_(newer, events.c.received_at >= seen_at - RESUME_OVERLAP)
        query = flt.apply(select(events)).where(newer, events.c.id != after).order_by(events.c.id)
        return [event_row_view(r) for r in conn.execute(query.limit(REPLAY_LIMIT))]


def _sse(kind: str, data: dict[str, Any], event_id: int | None) -> str:
    head = f"event: {kind}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + f"data: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


@router.get(
    "/{event_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No snapshot (yet)"}},
)
def snapshot(event_id: IdPath, engine: EngineDep, _user: SnapshotViewer) -> Response:
    """The JPEG the gate took for this event, once it has been uploaded (admins and guards)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(events.c.site, events.c.gate, events.c.snapshot).where(events.c.id == event_id)
        ).first()
        jpeg = None
        if row is not None and row.snapshot is not None:
            jpeg = conn.execute(
                select(snapshots.c.jpeg).where(
                    snapshots.c.site == row.site,
                    snapshots.c.gate == row.gate,
                    snapshots.c.name == row.snapshot,
                )
            ).scalar()
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no snapshot for this event (yet)")
    return Response(bytes(jpeg), media_type="image/jpeg")
