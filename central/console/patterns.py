"""Sample data for the patterns page: every partial in each of its states, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from central.console.fleet_data import version_summary
from central.fleet import OrderKind
from central.routes.alerts import AlertPublic
from central.routes.events import EventPublic
from central.routes.gates import GatePublic
from central.routes.lockdowns import OrderPublic
from central.routes.policy import GateVersion
from protocol.policy import LockdownMode


def _gate(gate_id: int, name: str, online: bool, now: datetime, **status: Any) -> GatePublic:
    return GatePublic(
        id=gate_id, site="sample", gate=name, online=online,
        last_seen=now - timedelta(seconds=4), offline_since=None if online else now - timedelta(
            minutes=3), cache_version=12, backlog=status.get("backlog", 0),
        clock_skew_s=status.get("skew", 0.2), last_sync=now - timedelta(minutes=2), version="0.1.0",
        counters=status.get("counters", {}), config={},
        policy_version=status.get("applied", 7), policy_latest=7,
        lockdown=status.get("lockdown"), emergency_release=status.get("release", False),
    )  # fmt: skip


def _event(
    event_id: int, now: datetime, granted: bool | None, reason: str, **extra: Any
) -> EventPublic:
    at = (now - timedelta(seconds=event_id * 7)).isoformat()
    details = {
        "holder_kind": "resident",
        "display_name": "张*华",
        "flags": [],
        **extra.pop("details", {}),
    }
    return EventPublic(
        event_id=event_id, site="sample", gate=extra.pop("gate", "east"), epoch=1, seq=event_id,
        type=extra.pop("type", "decision"), at=at, received_at=at, granted=granted, reason=reason,
        pass_id="00000000000000a1",  # noqa: S106 - a sample pass id, no secret
        temperature_c=extra.pop("temperature_c", 36.6),
        clock_skew_s=None, snapshot_url=None, details=details,
    )  # fmt: skip


def samples() -> dict[str, Any]:
    now = datetime.now(UTC)
    fever = _event(3, now, False, "fever", temperature_c=38.6, details={"flags": ["fever"]})
    alert = AlertPublic(
        id=1, site="sample", gate="east", kind="fever", state="open", opened_at=now,
        event_id=3, details={}, acked_by=None, acked_at=None, ack_note=None, resolved_by=None,
        resolved_at=None, resolve_note=None,
    )  # fmt: skip
    tiles: list[dict[str, Any]] = [
        {"gate": _gate(1, "east", True, now), "last_event": fever, "faults": [],
         "skew_warning": False},
        {"gate": _gate(2, "north", False, now, backlog=17, applied=6), "last_event": None,
         "faults": [], "skew_warning": False},
        {"gate": _gate(3, "west", True, now, skew=95.0, counters={"thermometer_up": False},
                       lockdown=LockdownMode.RESIDENTS_ONLY, release=True),
         "last_event": None, "faults": ["thermometer"], "skew_warning": True},
    ]  # fmt: skip
    events = [
        _event(1, now, True, "ok"),
        _event(2, now, False, "expired", details={"holder_kind": "tenant", "detail": "expired"}),
        fever,
        _event(4, now, None, "ok", type="remote_open", temperature_c=None),
    ]
    groups = [{"newest": alert, "ids": [1], "count": 3, "first_at": now, "event": fever}]
    shown: list[GatePublic] = [t["gate"] for t in tiles]
    versions = [GateVersion(gate_id=g.id, gate=g.gate, version=7,
                            applied_version=g.policy_version, online=g.online)
                for g in shown]  # fmt: skip
    return {"tiles": tiles, "events": events, "alert_groups": groups,
            "sample_orders": _orders(now), "summary": version_summary(versions)}  # fmt: skip


def _orders(now: datetime) -> dict[str, list[OrderPublic]]:
    """A lockdown one gate has not yet applied, and an emergency release at one gate."""
    common = {"site": "sample", "started_at": now - timedelta(minutes=12), "started_by": "admin",
              "ended_at": None, "ended_by": None, "gates_total": 3}  # fmt: skip
    lockdown = OrderPublic(id=1, kind=OrderKind.LOCKDOWN, gates=None, reason="疫情防控",
                           mode=LockdownMode.FULL, gates_pending=1, **common)  # fmt: skip
    release = OrderPublic(id=2, kind=OrderKind.RELEASE, gates=["west"], reason="消防演练",
                          mode=None, gates_pending=0, **common)  # fmt: skip
    return {"lockdowns": [lockdown], "releases": [release]}
