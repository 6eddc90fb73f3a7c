"""Everything central checks about a gate's MQTT message before it may reach storage.

Validation is complete here, so a message that passes cannot fail the storage transaction it
shares with other gates' messages on account of its values (protocol/messages.py has the
bounds). The one fact that needs the database, whether a snapshot's event is stored, is checked
inside the transaction.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from protocol import topics
from protocol.messages import (
    MAX_SNAPSHOT_BYTES,
    EventBatch,
    GateStatus,
    SnapshotUpload,
    SyncRequest,
)
from protocol.policy import PolicyRequest
from protocol.topics import GateTopic, TopicError


class Reject(StrEnum):
    """Why a message was not stored: the `reason` label of `menjin_messages_rejected`."""

    OVERSIZED = "oversized"
    BAD_TOPIC = "bad_topic"
    INVALID_PAYLOAD = "invalid_payload"
    SPOOFED_TOPIC = "spoofed_topic"
    UNKNOWN_GATE = "unknown_gate"
    OVERSIZED_SNAPSHOT = "oversized_snapshot"
    UNREFERENCED_SNAPSHOT = "unreferenced_snapshot"
    STORE_ERROR = "store_error"  # valid, yet its storage failed; the rest went in without it
    SHED = "shed"  # the ingest queue stayed full; not acked, so the gate sends it again


@dataclass
class Incoming:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Parsed:
    """A validated message, ready to store."""

    site: str
    gate: str
    kind: str
    message: Any
    jpeg: bytes = b""  # a snapshot upload's decoded JPEG


class RejectError(Exception):
    """A message that is not stored; the reason is counted."""

    def __init__(self, reason: Reject, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


MODELS: dict[str, type[BaseModel]] = {
    GateTopic.EVENTS.value: EventBatch,
    GateTopic.STATUS.value: GateStatus,
    GateTopic.SYNC_REQUEST.value: SyncRequest,
    GateTopic.POLICY_REQUEST.value: PolicyRequest,
    GateTopic.SNAPSHOT.value: SnapshotUpload,
}


def validate(item: Incoming, max_payload: int, is_known: Callable[[str, str], bool]) -> Parsed:
    """Check size (before parsing), topic, schema and bounds, topic/payload agreement, gate."""
    if len(item.payload) > max_payload:
        raise RejectError(Reject.OVERSIZED, f"{len(item.payload)} bytes on {item.topic}")
    try:
        parsed = topics.parse_topic(item.topic)
    except TopicError as exc:
        raise RejectError(Reject.BAD_TOPIC, str(exc)) from exc
    model = MODELS.get(parsed.kind)
    if parsed.gate is None or model is None:
        raise RejectError(Reject.BAD_TOPIC, f"central does not take {item.topic}")
    try:
        message = model.model_validate_json(item.payload)
    except ValidationError as exc:
        raise RejectError(_schema_reason(exc), str(exc.errors()[:2])) from exc
    if isinstance(message, EventBatch) and (message.site, message.gate) != (
        parsed.site,
        parsed.gate,
    ):
        raise RejectError(
            Reject.SPOOFED_TOPIC, f"{item.topic} carries {message.site}/{message.gate}"
        )
    if not is_known(parsed.site, parsed.gate):
        raise RejectError(Reject.UNKNOWN_GATE, f"{parsed.site}/{parsed.gate}")
    jpeg = _snapshot_bytes(message) if isinstance(message, SnapshotUpload) else b""
    return Parsed(parsed.site, parsed.gate, parsed.kind, message, jpeg)


def _schema_reason(exc: ValidationError) -> Reject:
    too_long = any(
        e["loc"] == ("jpeg_b64",) and e["type"] == "string_too_long" for e in exc.errors()
    )
    return Reject.OVERSIZED_SNAPSHOT if too_long else Reject.INVALID_PAYLOAD


def _snapshot_bytes(upload: SnapshotUpload) -> bytes:
    try:
        jpeg = base64.b64decode(upload.jpeg_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RejectError(Reject.INVALID_PAYLOAD, f"snapshot {upload.name}: not base64") from exc
    if len(jpeg) > MAX_SNAPSHOT_BYTES:
        raise RejectError(Reject.OVERSIZED_SNAPSHOT, f"{upload.name}: {len(jpeg)} bytes")
    if not jpeg.startswith(b"\xff\xd8"):
        raise RejectError(Reject.INVALID_PAYLOAD, f"snapshot {upload.name}: not a JPEG")
    return jpeg
