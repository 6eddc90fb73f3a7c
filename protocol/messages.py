"""Typed MQTT payloads. Every message has a schema version and forbids unknown fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from protocol.base45 import ALPHABET
from protocol.epass import BOUND_PREFIX
from protocol.epass_bound import MAX_PASS_BYTES
from protocol.policy import LockdownMode
from protocol.topics import ID_PATTERN

SCHEMA_VERSION = 1

# Bounds on everything a gate can send (docs/protocol.md, "Bounds"). A value outside them is
# refused by validation, before central's storage transaction, so it cannot fail that
# transaction for other gates' messages.
MAX_INT = 2**53 - 1  # exact in JSON parsers that use doubles (the console); fits BIGINT
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # a gate whose RTC lost power says 1970
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # far from datetime's year 9999, so no overflow
MAX_TEXT = 1000  # one detail string; the agent cuts device errors at 500
MAX_DETAILS = 64  # keys in one event's details
MAX_LIST = 1000  # items in one detail list (journal_dropped ranges)
MAX_MESSAGE_BYTES = 4 * 2**20  # = `message_size_limit` in config/mosquitto.conf (a test checks)
MAX_SNAPSHOT_BYTES = 360 * 1024  # one JPEG; base64 of it fits central's 512 KiB payload limit
MAX_SNAPSHOT_B64 = (MAX_SNAPSHOT_BYTES + 2) // 3 * 4
MAX_SKEW_S = 4.2e9  # 1970 against 2100: any two clocks inside the time window
PASS_ID_PATTERN = r"^[0-9a-f]{16}$"  # noqa: S105 - a pass id's format, not a password
MAX_REVOCATIONS = 100_000  # in one SyncDelta; MAX_MESSAGE_BYTES bites first (~60,000)
SNAPSHOT_PATTERN = r"^[A-Za-z0-9_.-]{1,80}\.jpg$"
MAX_HINTED_PASSES = 2000  # device-bound pass texts in one SyncDelta (~430 KB at most)
# The longest static device-bound pass text: its prefix, then base45 of MAX_PASS_BYTES bytes
# (three characters per two bytes, two for an odd last one): 213 characters.
MAX_BOUND_PASS_TEXT = len(BOUND_PREFIX) + MAX_PASS_BYTES // 2 * 3 + MAX_PASS_BYTES % 2 * 2
BASE45_CLASS = "[" + "".join(re.escape(ch) for ch in ALPHABET) + "]"
BASE45_PATTERN = f"^{BASE45_CLASS}*$"
_RANGE = re.compile(r"^([0-9]{1,16}):([0-9]{1,16})-([0-9]{1,16})$")


Count = Annotated[int, Field(ge=0, le=MAX_INT)]
Seq = Annotated[int, Field(ge=1, le=MAX_INT)]
# Bounds checked inside pydantic-core (by instant, whatever the offset): a Python
# AfterValidator here cost a third of validating an event batch on central.
Timestamp = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=LATEST)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
PassId = Annotated[str, Field(pattern=PASS_ID_PATTERN)]
# Only bounded here: whether it is a pass at all is the gate's pre-verifier's to say, so one
# bad text is refused alone, not the delta with the revocations it carries.
BoundPassText = Annotated[str, Field(max_length=MAX_BOUND_PASS_TEXT, pattern=BASE45_PATTERN)]
Key = Annotated[str, Field(min_length=1, max_length=64)]
Number = Annotated[float, Field(allow_inf_nan=False, ge=-float(MAX_INT), le=float(MAX_INT))]
DetailValue = (
    Text | Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)] | Number | bool | None
    | Annotated[list[Text], Field(max_length=MAX_LIST)]
)  # fmt: skip


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
    epoch: Count = Field(description="Gate boot epoch; grows with every agent start.")
    seq: Seq = Field(description="Per-gate journal sequence; never reused.")
    at: Timestamp = Field(description="Gate time of the event, with its UTC offset.")
    type: EventType = Field(description="What happened.")
    granted: bool | None = Field(default=None, description="For decisions: was the door opened.")
    reason: str | None = Field(
        default=None, max_length=200, description="Decision reason or fault kind."
    )
    pass_id: str | None = Field(
        default=None, pattern=PASS_ID_PATTERN, description="Pass id (hex), when a pass was read."
    )
    temperature_c: float | None = Field(
        default=None, ge=-50, le=150, allow_inf_nan=False, description="Body temperature reading."
    )
    snapshot: str | None = Field(
        default=None, pattern=SNAPSHOT_PATTERN, description="Snapshot file name, if one was saved."
    )
    details: dict[Key, DetailValue] = Field(
        default_factory=dict, max_length=MAX_DETAILS, description="Further facts."
    )

    @model_validator(mode="after")
    def _ranges_well_formed(self) -> GateEvent:
        if self.type is EventType.JOURNAL_DROPPED:
            self.dropped_ranges()
        return self

    def dropped_ranges(self) -> list[tuple[int, int, int]]:
        """A journal_dropped event's `details.ranges` as (epoch, first, last); raises if bad."""
        ranges = self.details.get("ranges", [])
        if not isinstance(ranges, list):
            raise ValueError("details.ranges must be a list of 'epoch:first-last'")
        out = []
        for item in ranges:
            found = _RANGE.match(item)
            epoch, first, last = (int(g) for g in found.groups()) if found else (0, 0, -1)
            if not (found and epoch <= MAX_INT and 1 <= first <= last <= MAX_INT):
                raise ValueError(f"bad dropped range {item[:40]!r}")
            out.append((epoch, first, last))
        return out


class EventBatch(_Message):
    """Gate -> central on `.../events`: journal entries in seq order."""

    v: Literal[1] = 1
    site: str = Field(pattern=ID_PATTERN, description="Must match the topic's site.")
    gate: str = Field(pattern=ID_PATTERN, description="Must match the topic's gate.")
    epoch_first_seq: dict[Count, Seq] = Field(
        default_factory=dict,
        max_length=500,
        description="For each epoch in the batch, its first journal seq.",
    )
    events: list[GateEvent] = Field(min_length=1, max_length=500, description="Journal entries.")


class Ack(_Message):
    """Central -> gate on `.../ack`: everything up to `seq` in `epoch` is stored."""

    v: Literal[1] = 1
    epoch: Count = Field(description="The epoch this ack is about.")
    seq: Count = Field(description="Highest contiguous seq stored in that epoch.")
    replay_from: Seq | None = Field(
        default=None, description="Central is missing entries from this seq: send them again."
    )


class GateState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class GateStatus(_Message):
    """Gate -> all on `.../status`, retained; the broker publishes the `offline` will."""

    v: Literal[1] = 1
    state: GateState = Field(description="online, or offline (the last will).")
    at: Timestamp | None = Field(default=None, description="Gate clock when sent.")
    version: str | None = Field(default=None, max_length=40, description="menjin version.")
    cache_version: Count | None = Field(default=None, description="Revocation list version held.")
    backlog: Count | None = Field(default=None, description="Journal entries not yet acked.")
    clock_skew_s: float | None = Field(
        default=None, ge=-MAX_SKEW_S, le=MAX_SKEW_S, description="Central clock minus gate clock."
    )
    last_sync: Timestamp | None = Field(default=None, description="When the cache last synced.")
    auth_failed: bool = Field(default=False, description="The broker refused the credentials.")
    policy_version: Count | None = Field(
        default=None, description="Signed policy version applied (0: only the TOML's)."
    )
    lockdown: LockdownMode | None = Field(default=None, description="Lockdown in force, if any.")
    emergency_release: bool = Field(default=False, description="The relay is held open.")
    counters: dict[Key, Count | bool] = Field(
        default_factory=dict,
        max_length=MAX_DETAILS,
        description="What the agent counted: presentations, rejects and faults per device.",
    )


class CommandAction(StrEnum):
    OPEN = "open"


class Command(_Message):
    """Central -> gate on `.../cmd`: run at most once per id, never after expiry."""

    v: Literal[1] = 1
    id: str = Field(min_length=1, max_length=64, description="Unique command id.")
    action: CommandAction = Field(description="What to do.")
    expires_at: Timestamp = Field(description="Never run after this time.")
    issued_by: str | None = Field(
        default=None, max_length=80, description="Who asked, for the audit trail."
    )


class SyncAnnouncement(_Message):
    """Central -> a site's gates on `.../sync`: the revocation list is now at `version`."""

    v: Literal[1] = 1
    version: Count = Field(description="Current revocation list version.")


class SyncRequest(_Message):
    """Gate -> central on `.../syncreq`: send what changed after `since`."""

    v: Literal[1] = 1
    since: Count = Field(description="The gate's cache version (0: never synced).")
    passes: bool = Field(
        exclude_if=lambda passes: not passes,  # left out when false: an older central refuses it
        default=False,
        description="Also send the device-bound passes of my site bound to a phone after `since`.",
    )


class Revocation(_Message):
    pass_id: str = Field(pattern=PASS_ID_PATTERN, description="Revoked pass id.")
    reason: str = Field(default="", max_length=200, description="Why.")
    until: Count | None = Field(default=None, description="Pass expiry (Unix s), to prune after.")


class SyncDelta(_Message):
    """Central -> gate on `.../delta`: apply atomically, then the cache is at `version`."""

    v: Literal[1] = 1
    version: Count = Field(description="Version the gate is at after applying this.")
    snapshot: bool = Field(description="True: replace every central revocation with `revoked`.")
    revoked: list[Revocation] = Field(
        default_factory=list, max_length=MAX_REVOCATIONS, description="Revoked passes."
    )
    unrevoked: list[PassId] = Field(
        default_factory=list, max_length=MAX_REVOCATIONS, description="Pass ids no longer revoked."
    )
    passes: list[BoundPassText] = Field(
        default_factory=list,
        max_length=MAX_HINTED_PASSES,
        # Left out when empty: the JSON is then byte for byte what a gate got before the field.
        exclude_if=lambda passes: not passes,
        description="Static texts of the site's device-bound passes bound to a phone after `since`"
        " (a snapshot: all), not expired and not revoked, newest first; advisory"
        " (SyncRequest.passes).",
    )


class CentralStatus(_Message):
    """Central's retained status on `menjin/v1/central/status`; gates measure clock skew on it."""

    v: Literal[1] = 1
    state: GateState = Field(description="online, or offline (the last will).")
    at: Timestamp | None = Field(default=None, description="Central's clock when sent.")


class SnapshotUpload(_Message):
    """Gate -> central on `.../snapshot`: the JPEG an event refers to, base64."""

    v: Literal[1] = 1
    name: str = Field(pattern=SNAPSHOT_PATTERN, description="File name in events.")
    epoch: Count = Field(description="Epoch of the event referring to it.")
    seq: Seq = Field(description="Seq of the event referring to it.")
    jpeg_b64: str = Field(max_length=MAX_SNAPSHOT_B64, description="The JPEG, base64.")


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
