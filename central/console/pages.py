"""The console's pages: the live view, events, one event, patterns; each with a `.json` twin."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from central.auth import Principal
from central.console import data, patterns
from central.console.render import fragment, page
from central.deps import EngineDep, IdPath, SettingsDep, current_principal
from central.routes import events as events_api
from central.routes import gates as gates_api
from central.routes.events import EventFilter
from protocol.live import Reason
from protocol.messages import EventType

router = APIRouter(include_in_schema=False)
EVENTS_PAGE = 50


class LoginRequiredError(Exception):
    """A page was asked for without a session: the app answers with a redirect to /login."""


def console_user(request: Request, engine: EngineDep) -> Principal:
    """The API's own caller check (cookie, bearer or key); no caller means the login page."""
    try:
        return current_principal(request, engine, None, None)
    except HTTPException as exc:
        raise LoginRequiredError from exc


ConsoleUser = Annotated[Principal, Depends(console_user)]


@router.get("/")
@router.get("/live.json")
def live_view(
    request: Request, engine: EngineDep, user: ConsoleUser, settings: SettingsDep
) -> Response:
    """Gate tiles, open alerts and the live feed."""
    found = data.live_data(engine, user, settings.console.alert_group_s)
    return page(request, "live.html", user, found)


@router.get("/_partials/gates")
def gates_partial(request: Request, engine: EngineDep, user: ConsoleUser) -> Response:
    return fragment(request, "_partials/gate_tiles.html", user,
                    tiles=data.gate_tiles(engine, user))  # fmt: skip


@router.get("/_partials/alerts")
def alerts_partial(
    request: Request, engine: EngineDep, user: ConsoleUser, settings: SettingsDep
) -> Response:
    groups = data.alert_groups(engine, user, settings.console.alert_group_s)
    return fragment(request, "_partials/alerts.html", user, alert_groups=groups)


def _local(value: str | None, tz: ZoneInfo) -> datetime | None:
    """A `datetime-local` field's value, read in the site's zone."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=tz)


def event_filter(request: Request, tz: ZoneInfo) -> EventFilter:
    q = request.query_params
    result = {"granted": True, "denied": False}.get(q.get("result", ""))
    kind = q.get("type") or None
    # "site/gate": with the site, PostgreSQL can use the (site, gate, at) index
    site, _, gate = (q.get("gate") or "").rpartition("/")
    return EventFilter(
        site=site or None, gate=gate or None,
        type=EventType(kind) if kind in set(EventType) else None,
        pass_id=q.get("pass_id") or None, granted=result, reason=q.get("reason") or None,
        since=_local(q.get("since"), tz), until=_local(q.get("until"), tz),
    )  # fmt: skip


def api_query(flt: EventFilter) -> str:
    """The same selection as query parameters of the API (for the CSV export)."""
    return urlencode(flt.model_dump(mode="json", exclude_none=True))


@router.get("/events")
@router.get("/events.json")
def events_page(
    request: Request,
    engine: EngineDep,
    user: ConsoleUser,
    settings: SettingsDep,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    """Events filtered and paged, as GET /api/v1/events gives them, with CSV and XLSX exports."""
    flt = event_filter(request, ZoneInfo(settings.console.timezone))
    found = events_api.list_events(engine, user, flt, cursor, EVENTS_PAGE)
    gates = sorted({(f"{g.site}/{g.gate}", g.gate) for g in gates_api.list_gates(engine, user)})
    body = {"events": found.items, "next_cursor": found.next_cursor,
            "filter": flt.model_dump(mode="json")}  # fmt: skip
    params = {k: v for k, v in request.query_params.items() if k != "cursor"}
    csv_url = "/api/v1/events.csv?" + api_query(flt)
    return page(request, "events.html", user, body, gates=gates, params=params, csv_url=csv_url,
                choices=filter_choices())  # fmt: skip


def filter_choices() -> dict[str, list[str]]:
    reasons = [r.value for r in Reason] + ["unlock_failure"]  # the last: a remote open's
    return {"types": [t.value for t in EventType], "reasons": reasons}


@router.get("/events/{event_id}")
@router.get("/events/{event_id}.json")
def event_page(
    request: Request, event_id: IdPath, engine: EngineDep, user: ConsoleUser
) -> Response:
    """Every fact the gate recorded for one event."""
    event = events_api.get_event(event_id, engine, user)
    return page(request, "event.html", user, {"event": event})


@router.get("/patterns")
def patterns_page(request: Request, user: ConsoleUser) -> Response:
    """Every partial with sample data, to review the look in both languages."""
    return page(request, "patterns.html", user, patterns.samples())
