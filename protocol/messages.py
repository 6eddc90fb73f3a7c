"""Typed MQTT payloads. Every message has a schema version and forbids unknown fields."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.policy import LockdownMode

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
    POLICY_APPLIED = "policy_applied"
    POLICY_REFUSED = "policy_refused"  # a security event: someone sent a document we refused
    LOCKDOWN = "lockdown"  # a local lockdown started or ended at the gate
    EMERGENCY_RELEASE = "emergency_release"  # the relay is held open, or closed again


ALERT_TYPES = frozenset(
    {
        EventType.DOOR_FORCED,
        EventType.DOOR_HELD_OPEN,
        EventType.UNLOCK_FAILURE,
        EventType.DEVICE_FAULT,
        EventType.SENSOR_FAULT,
        EventType.POLICY_REFUSED,
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


class EventBatch(_Message):
    """Gate -> central on `.../events`: journal entries in seq order."""

    v: Literal[1] = 1
    site: str = Field(description="Must match the topic's site.")
    gate: str = Field(description="Must match the topic's gate.")
    epoch_first_seq: dict[int, int] = Field(
        default_factory=dict, description="For each epoch in the batch, its first journal seq."
    )
    events: list[GateEvent] = Field(min_length=1, max_length=500, description="Journal entries.")


class Ack(_Message):
    """Central -> gate on `.../ack`: everything up to `seq` in `epoch` is stored."""

    v: Literal[1] = 1
    epoch: int = Field(description="The epoch this ack is about.")
    seq: int = Field(ge=0, description="Highest contiguous seq stored in that epoch.")
    replay_from: int | None = Field(
        default=None, description="Central is missing entries from this seq: send them again."
    )


class GateState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class GateStatus(_Message):
    """Gate -> all on `.../status`, retained; the broker publishes the `offline` will."""

    v: Literal[1] = 1
    state: GateState = Field(description="online, or offline (the last will).")
    at: datetime | None = Field(default=None, description="Gate clock when sent.")
    version: str | None = Field(default=None, description="menjin version on the gate.")
    cache_version: int | None = Field(default=None, description="Revocation list version held.")
    backlog: int | None = Field(default=None, description="Journal entries not yet acked.")
    clock_skew_s: float | None = Field(default=None, description="Central clock minus gate clock.")
    last_sync: datetime | None = Field(default=None, description="When the cache last synced.")
    auth_failed: bool = Field(default=False, description="The broker refused the credentials.")
    policy_version: int | None = Field(
        default=None, description="Signed policy version applied (0: only the TOML's)."
    )
    lockdown: LockdownMode | None = Field(default=None, description="Lockdown in force, if any.")
    emergency_release: bool = Field(default=False, description="The relay is held open.")
    counters: dict[str, int | bool] = Field(
        default_factory=dict,
        description="What the agent counted: presentations, rejects and faults per device.",
    )


class CommandAction(StrEnum):
    OPEN = "open"


class Command(_Message):
    """Central -> gate on `.../cmd`: run at most once per id, never after expiry."""

    v: Literal[1] = 1
    id: str = Field(min_length=1, max_length=64, description="Unique command id.")
    action: CommandAction = Field(description="What to do.")
    expires_at: datetime = Field(description="Never run after this time.")
    issued_by: str | None = Field(default=None, description="Who asked, for the audit trail.")


class SyncAnnouncement(_Message):
    """Central -> a site's gates on `.../sync`: the revocation list is now at `version`."""

    v: Literal[1] = 1
    version: int = Field(ge=0, description="Current revocation list version.")


class SyncRequest(_Message):
    """Gate -> central on `.../syncreq`: send what changed after `since`."""

    v: Literal[1] = 1
    since: int = Field(ge=0, description="The gate's cache version (0: never synced).")


class Revocation(_Message):
    pass_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="Revoked pass id.")
    reason: str = Field(default="", max_length=200, description="Why.")
    until: int | None = Field(default=None, description="Pass expiry (Unix s), to prune after.")


class SyncDelta(_Message):
    """Central -> gate on `.../delta`: apply atomically, then the cache is at `version`."""

    v: Literal[1] = 1
    version: int = Field(ge=0, description="Version the gate is at after applying this.")
    snapshot: bool = Field(description="True: replace every central revocation with `revoked`.")
    revoked: list[Revocation] = Field(default_factory=list, description="Revoked passes.")
    unrevoked: list[str] = Field(default_factory=list, description="Pass ids no longer revoked.")


class CentralStatus(_Message):
    """Central's retained status on `menjin/v1/central/status`; gates measure clock skew on it."""

    v: Literal[1] = 1
    state: GateState = Field(description="online, or offline (the last will).")
    at: datetime | None = Field(default=None, description="Central's clock when sent.")


class SnapshotUpload(_Message):
    """Gate -> central on `.../snapshot`: the JPEG an event refers to, base64."""

    v: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,80}\.jpg$", description="File name in events.")
    epoch: int = Field(description="Epoch of the event referring to it.")
    seq: int = Field(description="Seq of the event referring to it.")
    jpeg_b64: str = Field(max_length=2_000_000, description="The JPEG, base64.")


class LiveMessage(_Message):
    """Central -> central replicas on `menjin/v1/central/live`: what stream clients should see."""

    v: Literal[1] = 1
    kind: Literal["event", "status", "alert"] = Field(description="What changed.")
    id: int | None = Field(default=None, description="Event or alert id.")
    site: str = Field(description="Site of the gate concerned.")
    gate: str = Field(description="Gate concerned.")
    data: dict[str, object] = Field(
        default_factory=dict, description="The item as the API shows it."
    )


class LiveBatch(_Message):
    """What one central transaction produced, sent to every replica in one message."""

    v: Literal[1] = 1
    items: list[LiveMessage] = Field(min_length=1, description="In the order they happened.")
