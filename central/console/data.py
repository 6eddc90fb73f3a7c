"""What the console's pages show, built by calling the API's own route functions (one data path).

Each page's data twin (`.json`) returns exactly these dicts, so automation and the console read
the same queries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from central.auth import Principal
from central.routes import alerts as alerts_api
from central.routes import events as events_api
from central.routes import gates as gates_api
from central.routes.alerts import AlertPublic
from central.routes.events import EventFilter, EventPublic

FEED_LIMIT = 50
SKEW_WARN_S = 30.0
DEVICE_SUFFIX = "_up"


def _last_event(engine: Engine, user: Principal, site: str, gate: str) -> EventPublic | None:
    page = events_api.list_events(engine, user, EventFilter(site=site, gate=gate), None, 1)
    return page.items[0] if page.items else None


def gate_tiles(engine: Engine, user: Principal) -> list[dict[str, Any]]:
    """Each gate with what a guard needs at a glance: online, last event, backlog, faults."""
    tiles = []
    for gate in gates_api.list_gates(engine, user):
        faults = [
            name.removesuffix(DEVICE_SUFFIX)
            for name, up in gate.counters.items()
            if name.endswith(DEVICE_SUFFIX) and up is False
        ]
        skew = gate.clock_skew_s
        tiles.append(
            {
                "gate": gate,
                "last_event": _last_event(engine, user, gate.site, gate.gate),
                "faults": faults,
                "skew_warning": skew is not None and abs(skew) > SKEW_WARN_S,
            }
        )
    return tiles


def alert_groups(engine: Engine, user: Principal, window_s: float) -> list[dict[str, Any]]:
    """Open alerts, with repeats of one kind at one gate within `window_s` shown as one ×N."""
    found = alerts_api.list_alerts(engine, user, state="open", kind=None, site=None, gate=None,
                                   limit=500)  # fmt: skip
    found.sort(key=lambda a: (a.site, a.gate, a.kind, a.opened_at))
    groups: list[list[AlertPublic]] = []
    for alert in found:
        last = groups[-1][-1] if groups else None
        if (
            last is not None
            and (last.site, last.gate, last.kind) == (alert.site, alert.gate, alert.kind)
            and alert.opened_at - last.opened_at <= timedelta(seconds=window_s)
        ):
            groups[-1].append(alert)
        else:
            groups.append([alert])
    out = [_group(engine, user, g) for g in groups]
    out.sort(key=lambda g: g["newest"].opened_at, reverse=True)
    return out


def _group(engine: Engine, user: Principal, members: list[AlertPublic]) -> dict[str, Any]:
    newest = members[-1]
    event = None
    if newest.event_id is not None:
        event = events_api.get_event(newest.event_id, engine, user)
    return {
        "newest": newest,
        "ids": [a.id for a in members],
        "count": len(members),
        "first_at": members[0].opened_at,
        "event": event,
    }


def feed(engine: Engine, user: Principal, limit: int = FEED_LIMIT) -> list[EventPublic]:
    return events_api.list_events(engine, user, EventFilter(), None, limit).items


def live_data(engine: Engine, user: Principal, group_window_s: float) -> dict[str, Any]:
    """The live view: tiles, open alerts, the newest events."""
    return {
        "tiles": gate_tiles(engine, user),
        "alert_groups": alert_groups(engine, user, group_window_s),
        "events": feed(engine, user),
        "generated_at": datetime.now(UTC),
    }
