"""Once per cluster: hole chasing and giving up on gaps, offline alerts (leader only).

Each job runs on the one replica that leads it (central.leadership), so N replicas ask for a
replay once, give up on a hole after `max_replays` requests (not max_replays / N) and raise
one alert. The alerts carry a dedupe key as well: a lead that changes hands between a
replica's check and its commit still cannot raise an alert twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine

from central.config import IngestSection
from central.ingest.fanout import LiveFanout
from central.ingest.replies import Replies
from central.leadership import Job, Leadership
from central.store import ingest_store, presence
from central.store.ingest_store import Hole
from protocol.live import AlertKind, alert_opened
from protocol.messages import Ack, LiveMessage

log = logging.getLogger(__name__)


class LeaderJobs:
    """The housekeeping that must not run on every replica."""

    def __init__(
        self,
        cfg: IngestSection,
        engine: Engine,
        leadership: Leadership,
        replies: Replies,
        fanout: LiveFanout,
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        self.leadership = leadership
        self.replies = replies
        self.fanout = fanout

    def tick(self) -> None:
        if self.leadership.leads(Job.HOLES):
            self.chase_holes()
        if self.leadership.leads(Job.OFFLINE):
            self.check_offline()

    def chase_holes(self) -> None:
        now = datetime.now(UTC)
        older = timedelta(seconds=self.cfg.gap_replay_after_s)
        live: list[LiveMessage] = []
        with self.engine.begin() as conn:
            for hole in ingest_store.stale_holes(conn, older, now):
                if hole.replay_requests < self.cfg.max_replays:
                    ingest_store.note_replay(conn, hole, now)
                    ack = Ack(epoch=hole.epoch, seq=hole.acked_seq, replay_from=hole.acked_seq + 1)
                    self.replies.ack(hole.site, hole.gate, ack)
                    self.replies.counts["replay_requests"] += 1
                else:
                    live += self._give_up(conn, hole, now)
        self.fanout.notify(live)

    def _give_up(self, conn: Connection, hole: Hole, now: datetime) -> list[LiveMessage]:
        first, last = ingest_store.give_up_hole(conn, hole, now)
        acked = ingest_store.advance_contiguous(conn, hole.site, hole.gate, hole.epoch, now)
        details = {"epoch": hole.epoch, "first_seq": first, "last_seq": last}
        alert_id = presence.open_alert(
            conn, hole.site, hole.gate, AlertKind.MISSING_EVENTS, now,
            details=details, dedupe=f"{hole.epoch}:{first}-{last}",
        )  # fmt: skip
        log.error("gate %s/%s epoch %d: seq %d-%d never arrived",
                  hole.site, hole.gate, hole.epoch, first, last)  # fmt: skip
        self.replies.ack(hole.site, hole.gate, Ack(epoch=hole.epoch, seq=acked))
        if alert_id is None:
            return []
        kind = AlertKind.MISSING_EVENTS
        return [alert_opened(alert_id, hole.site, hole.gate, kind, now, details)]

    def check_offline(self) -> None:
        now = datetime.now(UTC)
        grace = timedelta(seconds=self.cfg.offline_grace_s)
        live: list[LiveMessage] = []
        with self.engine.begin() as conn:
            for site, gate, since in presence.offline_too_long(conn, grace, now):
                alert_id = presence.open_alert(
                    conn, site, gate, AlertKind.GATE_OFFLINE, now,
                    details={"offline_since": since.isoformat()}, dedupe=since.isoformat(),
                )  # fmt: skip
                if alert_id is not None:
                    details = {"offline_since": since.isoformat()}
                    live.append(
                        alert_opened(alert_id, site, gate, AlertKind.GATE_OFFLINE, now, details)
                    )
        self.fanout.notify(live)
