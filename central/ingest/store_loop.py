"""The per-replica pipeline: inbox -> validate -> store (one transaction) -> ack and notify."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from sqlalchemy import Connection, Engine

from central import ingest_commit
from central.config import IngestSection
from central.inbox import Inbox
from central.ingest.fanout import LiveFanout
from central.ingest.replies import Replies
from central.ingest_check import Incoming, Parsed, Reject, RejectError, validate
from central.ingest_commit import Committed
from central.store import presence
from protocol.messages import Ack

log = logging.getLogger(__name__)
REJECT_LOG_EVERY_S = 10.0
# The store loop keeps its connection while busy, so a transaction costs no pool checkout and
# no pre-ping (a round trip each, a tenth of the loop's time at 1,000 messages/s); after this
# long unused it goes back to the pool, and the next checkout pings as before.
HOLD_IDLE_S = 1.0


class StoreLoop:
    """Takes batches from the inbox and stores them; what committed is acked, then announced."""

    def __init__(
        self,
        cfg: IngestSection,
        engine: Engine,
        replies: Replies,
        fanout: LiveFanout,
        counts: Counter[str],
        rejects: Counter[str],
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        self.replies = replies
        self.fanout = fanout
        self.counts = counts
        self.rejects = rejects
        self.inbox = Inbox(cfg.queue_max_messages, cfg.queue_max_bytes)
        self._reject_logged: dict[Reject, float] = {}
        self._known: set[tuple[str, str]] = set()
        self._known_at = 0.0
        self._conn: Connection | None = None
        self._conn_used = 0.0

    def accept(self, item: Incoming) -> None:
        """Queue a message for the store loop; blocks paho's reader while the queue is full."""
        if len(item.payload) > self.cfg.max_payload_bytes:  # never queued, never parsed
            self.reject(RejectError(Reject.OVERSIZED, f"{len(item.payload)} bytes on {item.topic}"))
        elif not self.inbox.put(item, self.cfg.queue_block_s):
            self.reject(RejectError(Reject.SHED, f"queue full; {item.topic} not acked"))

    def reject(self, exc: RejectError) -> None:
        self.rejects[exc.reason.value] += 1
        # A flood of bad messages must not become a flood of log lines: one per reason per
        # REJECT_LOG_EVERY_S, with the running count; the metric has every one.
        now = time.monotonic()
        if now - self._reject_logged.get(exc.reason, -REJECT_LOG_EVERY_S) >= REJECT_LOG_EVERY_S:
            self._reject_logged[exc.reason] = now
            log.warning("rejected message: %s (%d so far)", exc, self.rejects[exc.reason.value])

    def _is_known(self, site: str, gate: str) -> bool:
        if (site, gate) in self._known:
            return True
        if time.monotonic() - self._known_at > 1.0:
            with self.engine.connect() as conn:
                self._known = presence.known_gates(conn)
            self._known_at = time.monotonic()
        return (site, gate) in self._known

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            # Under load messages queue up while the previous transaction commits, so taking
            # what is already there batches well without making a lone event wait.
            items = self.inbox.take(
                self.cfg.batch_messages,
                self.cfg.batch_max_bytes,
                0.5,
                self.cfg.batch_wait_ms / 1000,
            )
            if not items:
                self._release()
                continue
            try:
                self.process(items, held=True)
            except Exception:
                # Nothing is acked, so gates resend; the next transaction may well succeed.
                self.counts["store_failures"] += 1
                log.exception("storing %d messages failed; gates will resend", len(items))
                self._release()  # perhaps broken: the next one comes from the pool, pinged
                stop.wait(0.5)
        self._release()

    def _connection(self) -> Connection:
        now = time.monotonic()
        if self._conn is not None and now - self._conn_used > HOLD_IDLE_S:
            self._release()
        if self._conn is None:
            self._conn = self.engine.connect()
        self._conn_used = now
        return self._conn

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.exception("closing the store loop's connection failed")

    def process(self, items: list[Incoming], held: bool = False) -> None:
        """Validate each message, store them (isolating any that fails), then ack and notify.

        held: on the store loop's own connection (only the loop's thread may say so).
        """
        parsed: list[Parsed] = []
        for item in items:
            self.counts["received"] += 1
            try:
                parsed.append(validate(item, self.cfg.max_payload_bytes, self._is_known))
            except RejectError as exc:
                self.reject(exc)
        if not parsed:
            return
        conn = self._connection() if held else None
        for done in ingest_commit.store_isolating(
            self.engine if conn is None else conn, parsed, self.counts
        ):
            self._after_commit(done, conn)

    def _after_commit(self, done: Committed, conn: Connection | None) -> None:
        result = done.result
        self.counts["stored"] += len(result.inserted)
        self.counts["duplicates"] += result.duplicates
        for reason, n in done.rejected.items():
            self.rejects[reason.value] += n
        for (site, gate, epoch), seq in result.acks.items():
            self.replies.ack(site, gate, Ack(epoch=epoch, seq=seq))
        self.replies.answer(done.sync_requests, conn)
        self.fanout.notify_events(result.inserted, done.now.isoformat())
        self.fanout.notify(done.live)  # after the events they refer to, as they happened
