"""MQTT -> store, batched and idempotent; acks after commit; gap detection; presence; sync.

Every replica runs one Ingest. Events, sync requests and snapshots arrive on shared
subscriptions, so replicas split them; status messages arrive at every replica.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from central import fleet
from central.config import CentralSettings
from central.mqtt_client import AUTH_FAILURES, make_client
from central.store import ingest_store, presence, sync_store
from central.store.db import insert_ignore
from central.store.tables import snapshots
from central.views import event_view
from protocol import topics
from protocol.messages import (
    Ack,
    CentralStatus,
    EventBatch,
    GateState,
    GateStatus,
    LiveBatch,
    LiveMessage,
    SnapshotUpload,
    SyncAnnouncement,
    SyncRequest,
)
from protocol.policy import PolicyRequest
from protocol.topics import GateTopic, TopicError

log = logging.getLogger(__name__)
DEADLOCK_RETRIES = 3


def _is_deadlock(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code == "40P01" or "database is locked" in str(exc.orig)


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


class RejectError(Exception):
    """A message that is not stored; the reason is counted."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


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
        self._queue: queue.Queue[Incoming] = queue.Queue()
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
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
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
        self.publish_central_status()
        self.connected.set()
        log.info("central ingest connected to %s:%s", self._host, self._port)

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
        self._queue.put(Incoming(msg.topic, bytes(msg.payload), bool(msg.retain)))

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

    # --- validation --------------------------------------------------------------------------

    def validate(self, item: Incoming) -> Parsed:
        """Check size, topic, schema, topic/payload agreement and that the gate is known."""
        if len(item.payload) > self.cfg.max_payload_bytes:
            raise RejectError("oversized", f"{len(item.payload)} bytes on {item.topic}")
        try:
            parsed = topics.parse_topic(item.topic)
        except TopicError as exc:
            raise RejectError("bad_topic", str(exc)) from exc
        if parsed.gate is None:
            raise RejectError("bad_topic", item.topic)
        models: dict[str, Any] = {
            GateTopic.EVENTS.value: EventBatch,
            GateTopic.STATUS.value: GateStatus,
            GateTopic.SYNC_REQUEST.value: SyncRequest,
            GateTopic.POLICY_REQUEST.value: PolicyRequest,
            GateTopic.SNAPSHOT.value: SnapshotUpload,
        }
        model = models.get(parsed.kind)
        if model is None:
            raise RejectError("bad_topic", f"central does not take {parsed.kind}")
        try:
            message = model.model_validate_json(item.payload)
        except ValidationError as exc:
            raise RejectError("invalid_payload", str(exc.errors()[:2])) from exc
        if isinstance(message, EventBatch) and (message.site, message.gate) != (
            parsed.site,
            parsed.gate,
        ):
            raise RejectError(
                "spoofed_topic", f"{item.topic} carries {message.site}/{message.gate}"
            )
        if not self._is_known(parsed.site, parsed.gate):
            raise RejectError("unknown_gate", f"{parsed.site}/{parsed.gate}")
        return Parsed(parsed.site, parsed.gate, parsed.kind, message)

    def _is_known(self, site: str, gate: str) -> bool:
        if (site, gate) in self._known:
            return True
        if time.monotonic() - self._known_at > 1.0:
            with self.engine.connect() as conn:
                self._known = presence.known_gates(conn)
            self._known_at = time.monotonic()
        return (site, gate) in self._known

    # --- the store loop ----------------------------------------------------------------------

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            items = [first]
            # Under load messages queue up while the previous transaction commits, so taking
            # what is already there batches well without making a lone event wait.
            deadline = time.monotonic() + self.cfg.batch_wait_ms / 1000
            while len(items) < self.cfg.batch_messages:
                try:
                    wait = deadline - time.monotonic()
                    items.append(
                        self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
            try:
                self.process(items)
            except Exception:
                # Nothing is acked, so gates resend; the next transaction may well succeed.
                self.counts["store_failures"] += 1
                log.exception("storing %d messages failed; gates will resend", len(items))
                self._stop.wait(0.5)

    def process(self, items: list[Incoming]) -> None:
        """Validate, store in one transaction, then ack and tell listeners."""
        parsed: list[Parsed] = []
        for item in items:
            self.counts["received"] += 1
            try:
                parsed.append(self.validate(item))
            except RejectError as exc:
                self.rejects[exc.reason] += 1
                log.warning("rejected message: %s", exc)
        # A fixed order of row locks across replicas, and a retry if PostgreSQL still finds
        # a deadlock: the losing transaction rolled back whole, so running it again is safe.
        parsed.sort(key=lambda p: (p.site, p.gate, p.kind))
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                now, result, live, sync_requests = self._store(parsed)
                break
            except OperationalError as exc:
                if attempt == DEADLOCK_RETRIES or not _is_deadlock(exc):
                    raise
                self.counts["deadlock_retries"] += 1
        self.counts["stored"] += len(result.inserted)
        self.counts["duplicates"] += result.duplicates
        for (site, gate, epoch), seq in result.acks.items():
            self._publish_ack(site, gate, Ack(epoch=epoch, seq=seq))
        for p in sync_requests:
            if isinstance(p.message, PolicyRequest):
                self._answer_policy(p)
            else:
                self._answer_sync(p)
        live[:0] = [
            LiveMessage(
                kind="event",
                id=eid,
                site=site,
                gate=gate,
                data=event_view(eid, site, gate, ev, now),
            )
            for eid, site, gate, ev in result.inserted
        ]
        self._notify(live)

    def _store(
        self, parsed: list[Parsed]
    ) -> tuple[datetime, ingest_store.StoreResult, list[LiveMessage], list[Parsed]]:
        now = datetime.now(UTC)
        result = ingest_store.StoreResult()
        live: list[LiveMessage] = []
        sync_requests: list[Parsed] = []
        with self.engine.begin() as conn:
            for p in parsed:
                if isinstance(p.message, EventBatch):
                    ingest_store.store_batch(conn, p.message, now, result)
                elif isinstance(p.message, GateStatus):
                    if presence.apply_status(conn, p.site, p.gate, p.message, now):
                        data = {"state": p.message.state.value, "at": now.isoformat()}
                        live.append(LiveMessage(kind="status", site=p.site, gate=p.gate, data=data))
                elif isinstance(p.message, SnapshotUpload):
                    self._store_snapshot(conn, p, now)
                else:
                    sync_requests.append(p)
            for key in sorted(result.acks):
                result.acks[key] = ingest_store.advance_contiguous(conn, *key, now)
            live.extend(self._alerts_for(conn, result, now))
        return now, result, live, sync_requests

    def _alerts_for(
        self, conn: Connection, result: ingest_store.StoreResult, now: datetime
    ) -> list[LiveMessage]:
        out = []
        for event_id, site, gate, event in result.inserted:
            kind = ingest_store.alert_kind(event)
            if kind is None:
                continue
            details = {"seq": event.seq, "reason": event.reason, "pass_id": event.pass_id}
            alert_id = presence.open_alert(
                conn, site, gate, kind, now, event_id=event_id, details=details
            )
            if alert_id is not None:
                data = {"kind": kind, "state": "open", "opened_at": now.isoformat(), **details}
                out.append(LiveMessage(kind="alert", id=alert_id, site=site, gate=gate, data=data))
        return out

    def _store_snapshot(self, conn: Connection, p: Parsed, now: datetime) -> None:
        up: SnapshotUpload = p.message
        try:
            jpeg = base64.b64decode(up.jpeg_b64, validate=True)
        except ValueError:
            self.rejects["invalid_payload"] += 1
            return
        conn.execute(
            insert_ignore(conn.dialect.name, snapshots).values(
                site=p.site, gate=p.gate, name=up.name, epoch=up.epoch, seq=up.seq, jpeg=jpeg,
                received_at=now,
            )
        )  # fmt: skip

    def _notify(self, live: list[LiveMessage]) -> None:
        """Publish to every replica's stream clients (this one's included, via the broker)."""
        if live:
            batch = LiveBatch(items=live)
            self.client.publish(topics.central_live_topic(), batch.model_dump_json(), qos=1)

    # --- replies -----------------------------------------------------------------------------

    def _publish_ack(self, site: str, gate: str, ack: Ack) -> None:
        self.client.publish(
            topics.gate_topic(site, gate, GateTopic.ACK), ack.model_dump_json(), qos=1
        )
        self.counts["acks"] += 1

    def _answer_sync(self, p: Parsed) -> None:
        with self.engine.connect() as conn:
            delta = sync_store.delta_since(conn, p.message.since, self.cfg.delta_max_changes)
        self.client.publish(
            topics.gate_topic(p.site, p.gate, GateTopic.DELTA), delta.model_dump_json(), qos=1
        )
        self.counts["sync_answers"] += 1

    def _answer_policy(self, p: Parsed) -> None:
        """A gate connected: send its current signed policy again (the broker may have lost it)."""
        with self.engine.connect() as conn:
            signed = fleet.document_for(conn, p.site, p.gate)
        if signed is not None:
            fleet.publish(self.client, p.site, p.gate, signed)
            self.counts["policy_answers"] += 1

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
                    conn, hole.site, hole.gate, "missing_events", now,
                    details={"epoch": hole.epoch, "first_seq": first, "last_seq": last},
                )  # fmt: skip
                log.error(
                    "gate %s/%s epoch %d: seq %d-%d never arrived", hole.site, hole.gate,
                    hole.epoch, first, last,
                )  # fmt: skip
                self._publish_ack(hole.site, hole.gate, Ack(epoch=hole.epoch, seq=acked))
                if alert_id is not None:
                    data = {"kind": "missing_events", "state": "open", "first_seq": first,
                            "last_seq": last, "epoch": hole.epoch}  # fmt: skip
                    live.append(
                        LiveMessage(
                            kind="alert", id=alert_id, site=hole.site, gate=hole.gate, data=data
                        )
                    )
        self._notify(live)

    def _check_offline(self) -> None:
        now = datetime.now(UTC)
        grace = timedelta(seconds=self.cfg.offline_grace_s)
        live: list[LiveMessage] = []
        with self.engine.begin() as conn:
            for site, gate, since in presence.offline_too_long(conn, grace, now):
                alert_id = presence.open_alert(
                    conn, site, gate, "gate_offline", now,
                    details={"offline_since": since.isoformat()}, dedupe=since.isoformat(),
                )  # fmt: skip
                if alert_id is not None:
                    data = {"kind": "gate_offline", "state": "open", "offline_since": str(since)}
                    live.append(
                        LiveMessage(kind="alert", id=alert_id, site=site, gate=gate, data=data)
                    )
        self._notify(live)
