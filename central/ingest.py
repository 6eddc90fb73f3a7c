"""MQTT -> store, batched and idempotent; acks after commit; gap detection; presence; sync.

Every replica runs one Ingest. Events, sync requests and snapshots arrive on shared
subscriptions, so replicas split them; status messages arrive at every replica.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError
from sqlalchemy import Engine

from central import fleet, ingest_commit
from central.config import CentralSettings
from central.inbox import Inbox
from central.ingest_check import Incoming, Parsed, Reject, RejectError, validate
from central.ingest_commit import Committed
from central.mqtt_client import AUTH_FAILURES, make_client
from central.store import ingest_store, presence, sync_store
from central.views import event_view
from protocol import topics
from protocol.live import AlertKind, alert_opened
from protocol.messages import (
    MAX_MESSAGE_BYTES,
    Ack,
    CentralStatus,
    GateState,
    LiveBatch,
    LiveMessage,
    SyncAnnouncement,
)
from protocol.policy import PolicyRequest
from protocol.topics import GateTopic
from protocol.transport import guard_callback

log = logging.getLogger(__name__)
LIVE_SLICE = 200  # items per LiveBatch: ~120 kB of events
REJECT_LOG_EVERY_S = 10.0
LIVE_PENDING_MAX = 32  # live batches waiting for their PUBACK: ~6,400 events, a few MB
LIVE_PENDING_S = 30.0  # an older one is given up on (lost with a connection)


class Ingest:
    """One replica's MQTT ingest."""

    def __init__(self, settings: CentralSettings, engine: Engine) -> None:
        self.settings = settings
        self.cfg = settings.ingest
        self.engine = engine
        self.on_live: Callable[[LiveMessage], None] | None = None
        self.counts: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.connected = threading.Event()
        self.auth_failed = False
        self.inbox = Inbox(self.cfg.queue_max_messages, self.cfg.queue_max_bytes)
        self._reject_logged: dict[Reject, float] = {}
        self._live_pending: deque[tuple[float, mqtt.MQTTMessageInfo]] = deque()
        self._stop = threading.Event()
        self._known: set[tuple[str, str]] = set()
        self._known_at = 0.0
        self.client, self._host, self._port = make_client(settings.mqtt, "ingest")
        self.client.will_set(
            topics.central_status_topic(),
            CentralStatus(state=GateState.OFFLINE).model_dump_json(),
            qos=1,
            retain=True,
        )
        self.client.on_connect = guard_callback(self._on_connect, self._callback_failed)
        self.client.on_message = guard_callback(self._on_message, self._callback_failed)
        self.client.on_disconnect = guard_callback(self._on_disconnect, self._callback_failed)
        self._threads = [
            threading.Thread(target=self._work_loop, name="ingest", daemon=True),
            threading.Thread(target=self._housekeeping_loop, name="ingest-hk", daemon=True),
        ]

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.client.connect_async(self._host, self._port, keepalive=30)
        self.client.loop_start()
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        if self.connected.is_set():
            info = self.client.publish(
                topics.central_status_topic(),
                CentralStatus(state=GateState.OFFLINE, at=datetime.now(UTC)).model_dump_json(),
                qos=1,
                retain=True,
            )
            info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()
        for t in self._threads:
            t.join(timeout=5.0)

    # --- paho callbacks ----------------------------------------------------------------------

    def _callback_failed(self, _exc: BaseException) -> None:
        self.counts["callback_errors"] += 1  # guard_callback has logged it

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            if reason.value in AUTH_FAILURES:
                self.auth_failed = True
                log.critical("broker refused central's MQTT credentials (%s); not retrying", reason)
                client.disconnect()
            else:
                log.warning("MQTT connect refused: %s; retrying", reason)
            return
        shared = self.settings.mqtt.shared_subscriptions
        client.subscribe(
            [
                (topics.all_gates(GateTopic.EVENTS, shared=shared), 1),
                (topics.all_gates(GateTopic.SYNC_REQUEST, shared=shared), 1),
                (topics.all_gates(GateTopic.POLICY_REQUEST, shared=shared), 1),
                (topics.all_gates(GateTopic.SNAPSHOT, shared=shared), 1),
                (topics.all_gates(GateTopic.STATUS), 1),
                (topics.central_live_topic(), 1),
            ]
        )
        self.connected.set()
        log.info("central ingest connected to %s:%s", self._host, self._port)
        self.publish_central_status()

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("central ingest disconnected (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == topics.central_live_topic():
            self._on_live_message(bytes(msg.payload))
            return
        self.accept(Incoming(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def accept(self, item: Incoming) -> None:
        """Queue a message for the store loop; blocks paho's reader while the queue is full."""
        if len(item.payload) > self.cfg.max_payload_bytes:  # never queued, never parsed
            self._reject(
                RejectError(Reject.OVERSIZED, f"{len(item.payload)} bytes on {item.topic}")
            )
        elif not self.inbox.put(item, self.cfg.queue_block_s):
            self._reject(RejectError(Reject.SHED, f"queue full; {item.topic} not acked"))

    def _reject(self, exc: RejectError) -> None:
        self.rejects[exc.reason.value] += 1
        # A flood of bad messages must not become a flood of log lines: one per reason per
        # REJECT_LOG_EVERY_S, with the running count; the metric has every one.
        now = time.monotonic()
        if now - self._reject_logged.get(exc.reason, -REJECT_LOG_EVERY_S) >= REJECT_LOG_EVERY_S:
            self._reject_logged[exc.reason] = now
            log.warning("rejected message: %s (%d so far)", exc, self.rejects[exc.reason.value])

    def _on_live_message(self, payload: bytes) -> None:
        if self.on_live is None:
            return
        try:
            for item in LiveBatch.model_validate_json(payload).items:
                self.on_live(item)
        except ValidationError:
            self.rejects["invalid_live"] += 1
        except Exception:
            log.exception("live dispatch failed")

    # --- validation and storage ------------------------------------------------------------

    def _is_known(self, site: str, gate: str) -> bool:
        if (site, gate) in self._known:
            return True
        if time.monotonic() - self._known_at > 1.0:
            with self.engine.connect() as conn:
                self._known = presence.known_gates(conn)
            self._known_at = time.monotonic()
        return (site, gate) in self._known

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            # Under load messages queue up while the previous transaction commits, so taking
            # what is already there batches well without making a lone event wait.
            items = self.inbox.take(
                self.cfg.batch_messages,
                self.cfg.batch_max_bytes,
                0.5,
                self.cfg.batch_wait_ms / 1000,
            )
            if not items:
                continue
            try:
                self.process(items)
            except Exception:
                # Nothing is acked, so gates resend; the next transaction may well succeed.
                self.counts["store_failures"] += 1
                log.exception("storing %d messages failed; gates will resend", len(items))
                self._stop.wait(0.5)

    def process(self, items: list[Incoming]) -> None:
        """Validate each message, store them (isolating any that fails), then ack and notify."""
        parsed: list[Parsed] = []
        for item in items:
            self.counts["received"] += 1
            try:
                parsed.append(validate(item, self.cfg.max_payload_bytes, self._is_known))
            except RejectError as exc:
                self._reject(exc)
        for done in ingest_commit.store_isolating(self.engine, parsed, self.counts):
            self._after_commit(done)

    def _after_commit(self, done: Committed) -> None:
        result = done.result
        self.counts["stored"] += len(result.inserted)
        self.counts["duplicates"] += result.duplicates
        for reason, n in done.rejected.items():
            self.rejects[reason.value] += n
        for (site, gate, epoch), seq in result.acks.items():
            self._publish_ack(site, gate, Ack(epoch=epoch, seq=seq))
        for p in done.sync_requests:
            if isinstance(p.message, PolicyRequest):
                self._answer_policy(p)
            else:
                self._answer_sync(p)
        events = [
            LiveMessage(kind="event", id=eid, site=site, gate=gate,
                        data=event_view(eid, site, gate, ev, done.now))
            for eid, site, gate, ev in result.inserted
        ]  # fmt: skip
        self._notify(events, sheddable=True)
        self._notify(done.live)  # after the events they refer to, as they happened

    def _notify(self, live: list[LiveMessage], sheddable: bool = False) -> None:
        """Publish to every replica's stream clients (this one's included, via the broker).

        Stored events are `sheddable`: while LIVE_PENDING_MAX live batches wait for the broker
        (paho's out-queue has no bound, and in a burst the store loop outruns it), they are
        dropped from the live stream and counted; they are stored, and the API has them.
        Alerts and status changes always go.
        """
        now = time.monotonic()
        pending = self._live_pending
        while pending and (_done(pending[0][1]) or now - pending[0][0] > LIVE_PENDING_S):
            pending.popleft()
        if sheddable and live and len(pending) >= LIVE_PENDING_MAX:
            self.counts["live_shed"] += len(live)
            return
        # In slices, so that a big transaction's batch stays far below the broker's size limit.
        for start in range(0, len(live), LIVE_SLICE):
            batch = LiveBatch(items=live[start : start + LIVE_SLICE])
            info = self.client.publish(topics.central_live_topic(), batch.model_dump_json(), qos=1)
            pending.append((now, info))

    # --- replies -----------------------------------------------------------------------------

    def _publish_ack(self, site: str, gate: str, ack: Ack) -> None:
        self.client.publish(
            topics.gate_topic(site, gate, GateTopic.ACK), ack.model_dump_json(), qos=1
        )
        self.counts["acks"] += 1

    def _answer_policy(self, p: Parsed) -> None:
        """A gate connected: send its current signed policy again (the broker may have lost it)."""
        with self.engine.connect() as conn:
            signed = fleet.document_for(conn, p.site, p.gate)
        if signed is not None:
            fleet.publish(self.client, p.site, p.gate, signed)
            self.counts["policy_answers"] += 1

    def _answer_sync(self, p: Parsed) -> None:
        with self.engine.connect() as conn:
            delta = sync_store.delta_since(conn, p.message.since, self.cfg.delta_max_changes)
        payload = delta.model_dump_json()
        if len(payload) > MAX_MESSAGE_BYTES:
            # The broker would drop it without a word; say so here instead.
            self.counts["delta_too_large"] += 1
            log.error("revocation delta for %s/%s is %d bytes, over the broker's limit",
                      p.site, p.gate, len(payload))  # fmt: skip
            return
        self.client.publish(topics.gate_topic(p.site, p.gate, GateTopic.DELTA), payload, qos=1)
        self.counts["sync_answers"] += 1

    def announce(self, site: str, version: int) -> None:
        """Tell a site's gates that the revocation list changed; they fetch the delta."""
        self.client.publish(
            topics.sync_topic(site), SyncAnnouncement(version=version).model_dump_json(), qos=1
        )

    def publish_central_status(self) -> None:
        status = CentralStatus(state=GateState.ONLINE, at=datetime.now(UTC))
        self.client.publish(
            topics.central_status_topic(), status.model_dump_json(), qos=1, retain=True
        )

    # --- housekeeping ------------------------------------------------------------------------

    def _housekeeping_loop(self) -> None:
        next_status = 0.0
        while not self._stop.wait(1.0):
            try:
                if time.monotonic() >= next_status and self.connected.is_set():
                    self.publish_central_status()
                    next_status = time.monotonic() + self.cfg.status_interval_s
                self._chase_holes()
                self._check_offline()
            except Exception:
                log.exception("ingest housekeeping failed")

    def _chase_holes(self) -> None:
        now = datetime.now(UTC)
        older = timedelta(seconds=self.cfg.gap_replay_after_s)
        live: list[LiveMessage] = []
        with self.engine.begin() as conn:
            for hole in ingest_store.stale_holes(conn, older, now):
                if hole.replay_requests < self.cfg.max_replays:
                    ingest_store.note_replay(conn, hole, now)
                    ack = Ack(epoch=hole.epoch, seq=hole.acked_seq, replay_from=hole.acked_seq + 1)
                    self._publish_ack(hole.site, hole.gate, ack)
                    self.counts["replay_requests"] += 1
                    continue
                first, last = ingest_store.give_up_hole(conn, hole, now)
                acked = ingest_store.advance_contiguous(conn, hole.site, hole.gate, hole.epoch, now)
                alert_id = presence.open_alert(
                    conn, hole.site, hole.gate, AlertKind.MISSING_EVENTS, now,
                    details={"epoch": hole.epoch, "first_seq": first, "last_seq": last},
                )  # fmt: skip
                log.error(
                    "gate %s/%s epoch %d: seq %d-%d never arrived", hole.site, hole.gate,
                    hole.epoch, first, last,
                )  # fmt: skip
                self._publish_ack(hole.site, hole.gate, Ack(epoch=hole.epoch, seq=acked))
                if alert_id is not None:
                    details = {"epoch": hole.epoch, "first_seq": first, "last_seq": last}
                    kind = AlertKind.MISSING_EVENTS
                    live.append(alert_opened(alert_id, hole.site, hole.gate, kind, now, details))
        self._notify(live)

    def _check_offline(self) -> None:
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
        self._notify(live)


def _done(info: mqtt.MQTTMessageInfo) -> bool:
    """Published, or never will be: paho raises instead of answering while disconnected (the
    message is dropped with the connection; the stream's clients resume from the store)."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return True
