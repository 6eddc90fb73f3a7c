"""Events: filtered and paged, as CSV, their snapshots, and the live stream (SSE)."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import Engine, Select, or_, select

from central import visibility, xlsx
from central.auth import Principal, Role
from central.deps import MAX_ID, AnyUser, EngineDep, IdPath, require
from central.live import LiveHub, sse_message
from central.store.tables import events, snapshots
from central.views import csv_cell, event_row_view
from central.visibility import Data
from protocol.live import LiveEvent
from protocol.messages import EventType, LiveMessage

router = APIRouter(prefix="/api/v1/events", tags=["events"])
HEARTBEAT_S = 15.0
REPLAY_LIMIT = 1000
RESUME_OVERLAP = timedelta(seconds=2)


class EventPublic(LiveEvent):
    """An event as the API lists it; the same model the live stream carries."""


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: str | None


class EventFilter(BaseModel):
    """The selection shared by the list, the CSV export and the stream."""

    site: str | None = None
    gate: str | None = None
    type: EventType | None = None
    pass_id: str | None = None
    granted: bool | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        for column, value in (
            (events.c.site, self.site),
            (events.c.gate, self.gate),
            (events.c.type, self.type.value if self.type else None),
            (events.c.pass_id, self.pass_id),
            (events.c.granted, self.granted),
            (events.c.reason, self.reason),
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
        wanted = (
            ("type", self.type.value if self.type else None),
            ("pass_id", self.pass_id),
            ("granted", self.granted),
            ("reason", self.reason),
        )
        return all(value is None or data.get(key) == value for key, value in wanted)


Filter = Annotated[EventFilter, Depends()]


def _utc(value: datetime) -> datetime:
    """Times without an offset are UTC; stored times are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


SnapshotViewer = Annotated[Principal, Depends(require(*visibility.roles(Data.SNAPSHOT)))]


def shown(role: Role, view: dict[str, Any]) -> dict[str, Any]:
    """An event as this role may see it."""
    return visibility.redact(role, "EventPublic", view)


def page_query(flt: EventFilter, before: int | None, limit: int) -> Select[Any]:
    """One page of the selection, newest first (revision 0009 gives every filter an index)."""
    query = flt.apply(select(events)).order_by(events.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(events.c.id < before)
    return query


def _page(engine: Engine, flt: EventFilter, before: int | None, limit: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(page_query(flt, before, limit)).all())


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


def _pages(engine: Engine, flt: EventFilter, role: Role) -> Iterator[list[list[Any]]]:
    """The whole selection as this role may see it, newest first, a thousand export rows at a
    time; text a spreadsheet would take for a formula (= + - @, tab, CR first) gets a '."""
    before = None
    while True:
        page = _page(engine, flt, before, 1000)
        views = [shown(role, event_row_view(r)) for r in page]
        yield [[csv_cell(view[c]) for c in CSV_COLUMNS] for view in views]
        if len(page) < 1000:
            return
        before = page[-1].id


@router.get(".csv", response_class=StreamingResponse)
def events_csv(engine: EngineDep, user: AnyUser, flt: Filter) -> StreamingResponse:
    """The same selection as CSV, streamed page by page."""

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        buf.write("\ufeff")  # a BOM, so Excel on a Chinese Windows reads it as UTF-8
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for page in _pages(engine, flt, user.role):
            writer.writerows(page)
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()

    headers = {"Content-Disposition": 'attachment; filename="events.csv"'}
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSX_MAX_ROWS = 100_000


@router.get(".xlsx", response_class=Response, responses={200: {"content": {XLSX_TYPE: {}}}})
def events_xlsx(engine: EngineDep, user: AnyUser, flt: Filter) -> Response:
    """The same selection as an Excel workbook (the newest XLSX_MAX_ROWS at most)."""
    rows = itertools.islice(
        itertools.chain.from_iterable(_pages(engine, flt, user.role)), XLSX_MAX_ROWS
    )
    body = xlsx.workbook(CSV_COLUMNS, rows)
    headers = {"Content-Disposition": 'attachment; filename="events.xlsx"'}
    return Response(body, media_type=XLSX_TYPE, headers=headers)


@router.get("/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    engine: EngineDep,
    user: AnyUser,
    flt: Filter,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[
        str | None,
        Query(
            description="Resume point for a first connect (EventSource cannot "
            "send Last-Event-ID then); the header wins."
        ),
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events: new events, gate status changes and alerts; resumes after
    Last-Event-ID (events stored meanwhile are replayed first)."""
    hub: LiveHub = request.app.state.hub
    last_event_id = last_event_id or after
    sub = hub.subscribe()
    resume = None
    if last_event_id and last_event_id.isdigit() and int(last_event_id) <= MAX_ID:
        resume = int(last_event_id)
    backlog = await asyncio.to_thread(_replay, engine, flt, resume) if resume is not None else []

    async def gen() -> AsyncIterator[str]:
        # Replicas commit and publish in their own order, so live ids are not monotonic: skip
        # only what the replay already sent, never "everything below the highest id seen".
        replayed = {item["event_id"] for item in backlog}

        def wanted(live: LiveMessage) -> bool:
            return flt.matches(live) and not (live.kind == "event" and live.id in replayed)

        try:
            yield "retry: 2000\n\n"
            for item in backlog:
                yield sse_message("event", shown(user.role, item), item["event_id"])
            while not await request.is_disconnected():
                try:
                    first = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                batch = [first, *sub.ready()]  # one write for what arrived together
                if None in batch or sub.overflowed:
                    return  # server stopping, or a client too slow: it reconnects and resumes
                text = "".join(o.text(user.role) for o in batch if o and wanted(o.item))
                if text:
                    yield text
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


@router.get("/{event_id}", responses={404: {"description": "No such event"}})
def get_event(event_id: IdPath, engine: EngineDep, user: AnyUser) -> EventPublic:
    """One event with every fact the gate recorded."""
    with engine.connect() as conn:
        row = conn.execute(select(events).where(events.c.id == event_id)).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such event")
    return EventPublic(**shown(user.role, event_row_view(row)))


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
