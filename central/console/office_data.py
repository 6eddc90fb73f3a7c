"""What the office's pages show, from the API's own route functions (one data path)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import Engine

from central.auth import Principal
from central.config import CentralSettings
from central.routes import events as events_api
from central.routes import gates as gates_api
from central.routes import pass_lifecycle as lifecycle_api
from central.routes import passes as passes_api
from central.routes.events import EventFilter

PASS_EVENTS = 50


def site_gates(engine: Engine, user: Principal) -> dict[str, list[str]]:
    """Each site's gates, as the issue form offers them."""
    found: dict[str, list[str]] = {}
    for gate in gates_api.list_gates(engine, user):
        found.setdefault(gate.site, []).append(gate.gate)
    return found


def sites(engine: Engine, user: Principal, settings: CentralSettings) -> list[str]:
    """The sites the configuration names, then those that only have gates."""
    return list(dict.fromkeys([*settings.sites, *site_gates(engine, user)]))


def pass_detail(engine: Engine, user: Principal, request: Request, pass_id: str) -> dict[str, Any]:
    """The pass (its text read is audited), its events at every gate, its revocation's reach."""
    with engine.begin() as conn:
        shown = passes_api.show_pass(pass_id, conn, user, request)
        applied = lifecycle_api.revocation_at_gates(pass_id, conn, user)
    flt = EventFilter(pass_id=shown.pass_id)
    found = events_api.list_events(engine, user, flt, None, PASS_EVENTS)
    return {"pass": shown, "events": found.items, "applied": applied}
