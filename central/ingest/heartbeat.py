"""Central's status: each replica's own retained topic and last will, and the shared one.

`menjin/v1/central/replicas/{replica}/status` is this replica's truth: online on connect and
every heartbeat, offline by its last will or on a clean stop. Gates read
`menjin/v1/central/status` (clock skew from the live heartbeats); every replica beats there too,
and since one replica going away publishes offline there, the others answer it at once with a
beat of their own, so the shared topic says online while any replica is.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import ValidationError

from central.ingest.link import BrokerLink
from protocol import topics
from protocol.messages import CentralStatus, GateState


class Heartbeat:
    """Publishes this replica's status; `beat` is safe from any thread."""

    def __init__(self, replica: str, interval_s: float) -> None:
        self.replica = replica
        self.interval_s = interval_s
        self.own_topic = topics.central_replica_status_topic(replica)
        self._next = 0.0

    def will(self) -> tuple[str, bytes]:
        return self.own_topic, CentralStatus(state=GateState.OFFLINE).model_dump_json().encode()

    def beat(self, link: BrokerLink) -> None:
        payload = CentralStatus(state=GateState.ONLINE, at=datetime.now(UTC)).model_dump_json()
        link.publish(self.own_topic, payload, retain=True)
        link.publish(topics.central_status_topic(), payload, retain=True)
        self._next = time.monotonic() + self.interval_s

    def tick(self, link: BrokerLink) -> None:
        if time.monotonic() >= self._next and link.connected.is_set():
            self.beat(link)

    def heard_shared(self, link: BrokerLink, payload: bytes) -> None:
        """Another replica said offline on the shared topic: this one is up, so say so."""
        try:
            status = CentralStatus.model_validate_json(payload)
        except ValidationError:
            return
        if status.state is GateState.OFFLINE and link.connected.is_set():
            self._next = 0.0  # the housekeeping tick beats within a second

    def goodbye(self, link: BrokerLink) -> None:
        """A clean stop: offline on both topics (other replicas answer the shared one)."""
        payload = CentralStatus(state=GateState.OFFLINE, at=datetime.now(UTC)).model_dump_json()
        infos = [
            link.publish(self.own_topic, payload, retain=True),
            link.publish(topics.central_status_topic(), payload, retain=True),
        ]
        for info in infos:
            info.wait_for_publish(timeout=2.0)
