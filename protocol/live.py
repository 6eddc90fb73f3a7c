"""What the live stream (`GET /api/v1/events/stream`) carries to a browser, and the codes that
gate, ingest and console share: decision reasons, decision flags, alert kinds.

One place for each list: the gate decides with `Reason` and `Flag`, central raises alerts with
`AlertKind`, and the console has words for every member (a test checks both catalogs).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.messages import DetailValue, EventType, GateEvent, GateState, LiveMessage


class Reason(StrEnum):
    """Why a presentation was granted or denied; the strings are part of the contract."""

    OK = "ok"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    WRONG_SITE = "wrong_site"
    WRONG_GATE = "wrong_gate"
    OUTSIDE_HOURS = "outside_hours"
    USE_LIMIT = "use_limit"
    PASSBACK = "passback"
    FEVER = "fever"
    NO_TEMPERATURE = "no_temperature"
    LOCKDOWN = "lockdown"  # the holder's kind may not pass while a lockdown (封控) is in force
    NO_LIVE_CODE = "no_live_code"  # a device-bound pass without a good proof by its phone
    STALE_CODE = "stale_code"  # a live code's slot outside the gate's window
    REPLAYED = "replayed"  # this live code was already granted at this gate


class Flag(StrEnum):
    """Facts a decision carries in `details.flags`, whatever its reason."""

    FEVER = "fever"  # the reading was at or over the threshold (denied or, if advisory, not)
    SENSOR_FAULT = "sensor_fault"  # the thermometer did not answer
    PASSBACK = "passback"  # the same pass went the same way twice


class AlertKind(StrEnum):
    """What an alert is about; a guard sees it until someone acknowledges it."""

    FEVER = "fever"
    DOOR_FORCED = "door_forced"
    DOOR_HELD_OPEN = "door_held_open"
    UNLOCK_FAILURE = "unlock_failure"
    DEVICE_FAULT = "device_fault"
    GATE_OFFLINE = "gate_offline"
    MISSING_EVENTS = "missing_events"
    POLICY_REFUSED = "policy_refused"  # a gate refused a policy document: someone tried


class AlertState(StrEnum):
    OPEN = "open"
    ACKED = "acked"
    RESOLVED = "resolved"


ALERT_OF_TYPE = {
    EventType.DOOR_FORCED: AlertKind.DOOR_FORCED,
    EventType.DOOR_HELD_OPEN: AlertKind.DOOR_HELD_OPEN,
    EventType.UNLOCK_FAILURE: AlertKind.UNLOCK_FAILURE,
    EventType.DEVICE_FAULT: AlertKind.DEVICE_FAULT,
    EventType.SENSOR_FAULT: AlertKind.DEVICE_FAULT,
    EventType.JOURNAL_DROPPED: AlertKind.MISSING_EVENTS,
    EventType.POLICY_REFUSED: AlertKind.POLICY_REFUSED,
}


def has_flag(details: dict[str, DetailValue], flag: Flag) -> bool:
    flags = details.get("flags")
    return isinstance(flags, list) and flag in flags


def alert_kind(event: GateEvent) -> AlertKind | None:
    """The alert a journal entry raises, if any (the one rule for gate and central)."""
    if event.type in ALERT_OF_TYPE:
        return ALERT_OF_TYPE[event.type]
    if event.type is EventType.DECISION and has_flag(event.details, Flag.FEVER):
        return AlertKind.FEVER
    return None


class _Live(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LiveEvent(_Live):
    """`event:` on the stream (with `id:` = event_id): one stored journal entry."""

    event_id: int = Field(description="Central's id; the stream's Last-Event-ID.")
    site: str
    gate: str
    epoch: int = Field(description="Gate boot epoch.")
    seq: int = Field(description="Journal sequence within the epoch.")
    type: EventType
    at: datetime = Field(description="Gate time, with the gate's UTC offset.")
    received_at: datetime = Field(description="When central stored it (UTC).")
    granted: bool | None
    reason: str | None = Field(description="A Reason for decisions; a fault or outcome else.")
    pass_id: str | None
    temperature_c: float | None
    clock_skew_s: float | None
    snapshot_url: str | None = Field(description="Where the JPEG is, once uploaded.")
    details: dict[str, DetailValue] = Field(description="holder_kind, display_name, flags, …")


class LiveStatus(_Live):
    """`status:` on the stream: a gate went online or offline."""

    site: str
    gate: str
    id: None = None
    state: GateState
    at: datetime = Field(description="When central saw the change.")


class LiveAlert(_Live):
    """`alert:` on the stream: an alert was opened, acknowledged or resolved."""

    site: str
    gate: str
    id: int = Field(description="Alert id.")
    kind: AlertKind
    state: AlertState
    opened_at: datetime
    event_id: int | None = Field(default=None, description="The event that raised it.")
    details: dict[str, DetailValue] = Field(default_factory=dict)
    acked_by: str | None = None
    acked_at: datetime | None = None
    ack_note: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolve_note: str | None = None


LiveKind = Literal["event", "status", "alert"]
LIVE_KINDS: dict[LiveKind, type[_Live]] = {
    "event": LiveEvent,
    "status": LiveStatus,
    "alert": LiveAlert,
}


def live_message(kind: LiveKind, item: LiveStatus | LiveAlert) -> LiveMessage:
    """A typed stream payload wrapped for the replicas' live topic (see LiveMessage)."""
    data = item.model_dump(mode="json", exclude={"site", "gate", "id"})
    return LiveMessage(kind=kind, id=item.id, site=item.site, gate=item.gate, data=data)


def alert_opened(
    alert_id: int,
    site: str,
    gate: str,
    kind: AlertKind,
    now: datetime,
    details: Mapping[str, DetailValue],
    event_id: int | None = None,
) -> LiveMessage:
    alert = LiveAlert(site=site, gate=gate, id=alert_id, kind=kind, state=AlertState.OPEN,
                      opened_at=now, event_id=event_id, details=dict(details))  # fmt: skip
    return live_message("alert", alert)
