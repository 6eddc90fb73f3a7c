"""Typed MQTT payloads. Every message has a schema version and forbids unknown fields."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

DetailValue = str | int | float | bool | None | list[str]


class EventType(StrEnum):
    """What a journal entry records."""

    DECISION = "decision"
    DOOR_FORCED = "door_forced"
    DOOR_HELD_OPEN = "door_held_open"
    UNLOCK_FAILURE = "unlock_failure"
    DEVICE_FAULT = "device_fault"
    SENSOR_FAULT = "sensor_fault"
    REMOTE_OPEN = "remote_open"
    REVOCATION = "revocation"
    JOURNAL_DROPPED = "journal_dropped"
    AGENT_START = "agent_start"
    AGENT_STOP = "agent_stop"


ALERT_TYPES = frozenset(
    {
        EventType.DOOR_FORCED,
        EventType.DOOR_HELD_OPEN,
        EventType.UNLOCK_FAILURE,
        EventType.DEVICE_FAULT,
        EventType.SENSOR_FAULT,
    }
)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GateEvent(_Message):
    """One gate journal entry as it travels to central."""

    v: Literal[1] = Field(default=1, description="Schema version.")
    epoch: int = Field(description="Gate boot epoch; grows with every agent start.")
    seq: int = Field(ge=1, description="Per-gate journal sequence; never reused.")
    at: datetime = Field(description="Gate time of the event, with its UTC offset.")
    type: EventType = Field(description="What happened.")
    granted: bool | None = Field(default=None, description="For decisions: was the door opened.")
    reason: str | None = Field(default=None, description="Decision reason or fault kind.")
    pass_id: str | None = Field(default=None, description="Pass id (hex), when a pass was read.")
    temperature_c: float | None = Field(default=None, description="Body temperature reading.")
    snapshot: str | None = Field(default=None, description="Snapshot file name, if one was saved.")
    details: dict[str, DetailValue] = Field(default_factory=dict, description="Further facts.")
