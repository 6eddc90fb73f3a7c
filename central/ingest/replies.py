"""What central says to gates: acks after commit, sync answers, revocation announcements."""

from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy import Connection, Engine

from central import fleet
from central.config import IngestSection
from central.ingest.link import BrokerLink
from central.ingest_check import Parsed
from central.store import sync_store
from protocol import topics
from protocol.messages import MAX_MESSAGE_BYTES, Ack, SyncAnnouncement, SyncDelta, SyncRequest
from protocol.policy import PolicyRequest
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

    def answer(self, requests: list[Parsed], conn: Connection | None = None) -> None:
        """One transaction's sync and policy requests, read through one connection (`conn`,
        which must not be in a transaction, if given; else one of the pool's).

        Gates at the same list version (of one site, if they ask for its passes) get the same
        delta, read and encoded once: when a site's gates all connect at once they mostly ask
        from the same version.
        """
        if not requests:
            return
        if conn is None:
            with self.engine.connect() as own:
                self._answer(own, requests)
        else:
            with conn.begin():  # read only; ends the transaction the reads begin
                self._answer(conn, requests)

    def _answer(self, conn: Connection, requests: list[Parsed]) -> None:
        deltas = _Deltas(conn, self.cfg.delta_max_changes)
        for p in requests:
            if isinstance(p.message, PolicyRequest):
                self._answer_policy(conn, p, p.message)
            else:
                self._answer_sync(p, deltas)

    def _answer_sync(self, p: Parsed, deltas: _Deltas) -> None:
        request: SyncRequest = p.message
        # A gate that leaves `passes` out (another vendor's v1 gate) gets the delta of before.
        payload = deltas.json(request.since, p.site if request.passes else None)
        if len(payload) > MAX_MESSAGE_BYTES and request.passes:
            # The hints are advisory: never let them cost a gate its revocations.
            self.counts["delta_hints_left_out"] += 1
            log.warning("delta for %s/%s with pass hints is %d bytes, over the broker's limit:"
                        " sent without them", p.site, p.gate, len(payload))  # fmt: skip
            payload = deltas.json(request.since, None)
        if len(payload) > MAX_MESSAGE_BYTES:
            # The broker would drop it without a word; say so here instead.
            self.counts["delta_too_large"] += 1
            log.error("revocation delta for %s/%s is %d bytes, over the broker's limit",
                      p.site, p.gate, len(payload))  # fmt: skip
            return
        self.link.publish(topics.gate_topic(p.site, p.gate, GateTopic.DELTA), payload)
        self.counts["sync_answers"] += 1

    def _answer_policy(self, conn: Connection, p: Parsed, request: PolicyRequest) -> None:
        """A gate asked (after a connect, or its periodic refresh): send its current signed
        policy if it is newer than what the gate holds (the broker or a link may have lost it)."""
        version, signed = fleet.document_for(conn, p.site, p.gate)
        if signed is None:
            return
        if version <= request.have:  # the stored column, not the document parsed again
            self.counts["policy_current"] += 1  # a retained copy, if lost, is not needed by it
            return
        fleet.publish(self.link, p.site, p.gate, signed)
        self.counts["policy_answers"] += 1

    def announce(self, site: str, version: int) -> None:
        """Tell a site's gates that the revocation list changed; they fetch the delta."""
        self.link.publish(
            topics.sync_topic(site), SyncAnnouncement(version=version).model_dump_json()
        )


class _Deltas:
    """One transaction's answers: the revocation part read once per `since`, each site's
    passes once per (since, site), each payload encoded once."""

    def __init__(self, conn: Connection, max_changes: int) -> None:
        self.conn, self.max_changes = conn, max_changes
        self._base: dict[int, SyncDelta] = {}
        self._json: dict[tuple[int, str | None], str] = {}

    def json(self, since: int, site: str | None) -> str:
        key = (since, site)
        if key not in self._json:
            base = self._base.get(since)
            if base is None:
                base = self._base[since] = sync_store.delta_since(
                    self.conn, since, self.max_changes
                )
            delta = base if site is None else sync_store.with_passes(self.conn, base, site, since)
            # A site with no new passes gets the plain delta's bytes, encoded once for all.
            plain = delta is base and site is not None
            self._json[key] = self.json(since, None) if plain else delta.model_dump_json()
        return self._json[key]
