"""What central says to gates: acks after commit, sync answers, revocation announcements."""

from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy import Engine

from central import fleet
from central.config import IngestSection
from central.ingest.link import BrokerLink
from central.ingest_check import Parsed
from central.store import sync_store
from protocol import topics
from protocol.messages import MAX_MESSAGE_BYTES, Ack, SyncAnnouncement
from protocol.topics import GateTopic

log = logging.getLogger(__name__)


class Replies:
    """Publishes to gates through this replica's link."""

    def __init__(
        self, link: BrokerLink, engine: Engine, cfg: IngestSection, counts: Counter[str]
    ) -> None:
        self.link = link
        self.engine = engine
        self.cfg = cfg
        self.counts = counts

    def ack(self, site: str, gate: str, ack: Ack) -> None:
        self.link.publish(topics.gate_topic(site, gate, GateTopic.ACK), ack.model_dump_json())
        self.counts["acks"] += 1

    def answer_sync(self, p: Parsed) -> None:
        with self.engine.connect() as conn:
            delta = sync_store.delta_since(conn, p.message.since, self.cfg.delta_max_changes)
        payload = delta.model_dump_json()
        if len(payload) > MAX_MESSAGE_BYTES:
            # The broker would drop it without a word; say so here instead.
            self.counts["delta_too_large"] += 1
            log.error("revocation delta for %s/%s is %d bytes, over the broker's limit",
                      p.site, p.gate, len(payload))  # fmt: skip
            return
        self.link.publish(topics.gate_topic(p.site, p.gate, GateTopic.DELTA), payload)
        self.counts["sync_answers"] += 1

    def answer_policy(self, p: Parsed) -> None:
        """A gate connected: send its current signed policy again (the broker may have lost it)."""
        with self.engine.connect() as conn:
            signed = fleet.document_for(conn, p.site, p.gate)
        if signed is not None:
            fleet.publish(self.link, p.site, p.gate, signed)
            self.counts["policy_answers"] += 1

    def announce(self, site: str, version: int) -> None:
        """Tell a site's gates that the revocation list changed; they fetch the delta."""
        self.link.publish(
            topics.sync_topic(site), SyncAnnouncement(version=version).model_dump_json()
        )
