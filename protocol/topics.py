"""MQTT topics: built here, parsed here, listed in docs/protocol.md. Prefix `menjin/v1`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "menjin/v1"
SHARE_GROUP = "menjin-central"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$"
# New sites, gates and replicas may not hold '.': NATS's MQTT gateway (the clustered broker of
# docs/operations.md) refuses '.' in a topic and drops the client that publishes one. Ids with a
# dot already in use keep working on the wire (and on Mosquitto); only new ones are refused.
NEW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$"
NEW_ID_RULE = "letters, digits, '_' and '-' (1-48, starting with a letter or digit; no '.')"
_ID = re.compile(ID_PATTERN)
_NEW_ID = re.compile(NEW_ID_PATTERN)


class GateTopic(StrEnum):
    """The per-gate topic kinds, and who publishes them."""

    EVENTS = "events"  # gate -> central, QoS 1, batches of journal entries
    STATUS = "status"  # gate -> all, retained, last will "offline"
    ACK = "ack"  # central -> gate: highest contiguous seq stored, per epoch
    CMD = "cmd"  # central -> gate: commands with id and expiry
    SYNC_REQUEST = "syncreq"  # gate -> central: send me the revocation delta since version N
    DELTA = "delta"  # central -> gate: revocation delta or snapshot
    SNAPSHOT = "snapshot"  # gate -> central: a snapshot JPEG referenced by an event
    POLICY = "policy"  # central -> gate, retained: the gate's signed policy document
    POLICY_REQUEST = "policyreq"  # gate -> central: send my policy (after every connect)


class TopicError(ValueError):
    """A topic that is not one of ours, or names an invalid site or gate."""


def valid_id(value: str) -> bool:
    """Site and gate ids: letters, digits, '_', '.', '-'; no MQTT wildcards or separators."""
    return bool(_ID.match(value))


def valid_new_id(value: str) -> bool:
    """An id central may hand out today: as `valid_id`, without '.' (see NEW_ID_PATTERN)."""
    return bool(_NEW_ID.match(value))


def _check(*ids: str) -> None:
    for value in ids:
        if not valid_id(value):
            raise TopicError(f"invalid site or gate id {value!r}")


def gate_topic(site: str, gate: str, kind: GateTopic) -> str:
    _check(site, gate)
    return f"{PREFIX}/{site}/{gate}/{kind.value}"


def sync_topic(site: str) -> str:
    """Central -> a site's gates: the revocation list has a new version (not retained)."""
    _check(site)
    return f"{PREFIX}/{site}/sync"


def central_status_topic() -> str:
    """Central's retained online/offline status, with its clock."""
    return f"{PREFIX}/central/status"


def central_replica_status_topic(replica: str) -> str:
    """One central replica's retained online/offline status, with its last will."""
    _check(replica)
    return f"{PREFIX}/central/replicas/{replica}/status"


def central_replicas_status() -> str:
    """Subscription filter for every replica's status."""
    return f"{PREFIX}/central/replicas/+/status"


def central_live_topic() -> str:
    """Replica -> replicas: stored events, status changes and alerts for live streams."""
    return f"{PREFIX}/central/live"


def all_gates(kind: GateTopic, shared: bool = False) -> str:
    """Subscription filter for one topic kind of every gate, optionally as a shared subscription."""
    topic = f"{PREFIX}/+/+/{kind.value}"
    return f"$share/{SHARE_GROUP}/{topic}" if shared else topic


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    site: str
    gate: str | None
    kind: str


def parse_topic(topic: str) -> ParsedTopic:
    """Split one of our topics into site, gate and kind; raises TopicError otherwise."""
    parts = topic.split("/")
    if len(parts) < 3 or "/".join(parts[:2]) != PREFIX:
        raise TopicError(f"not a menjin topic: {topic!r}")
    rest = parts[2:]
    if rest == ["central", "status"]:
        return ParsedTopic("central", None, "central_status")
    if rest == ["central", "live"]:
        return ParsedTopic("central", None, "central_live")
    if len(rest) == 4 and rest[:2] == ["central", "replicas"] and rest[3] == "status":
        _check(rest[2])  # four levels: no gate filter (three levels) can match it
        return ParsedTopic("central", rest[2], "replica_status")
    if len(rest) == 2 and rest[1] == "sync":
        _check(rest[0])
        return ParsedTopic(rest[0], None, "sync")
    if len(rest) == 3:
        _check(rest[0], rest[1])
        try:
            kind = GateTopic(rest[2])
        except ValueError as exc:
            raise TopicError(f"unknown topic kind in {topic!r}") from exc
        return ParsedTopic(rest[0], rest[1], kind.value)
    raise TopicError(f"not a menjin topic: {topic!r}")
