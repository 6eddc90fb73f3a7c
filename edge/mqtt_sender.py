"""The bridge's outbox: the unacked journal to central in a window of batches, then snapshots.

An entry counts as sent only when central's application ack covers it; after a reconnect, or
when acks stop coming for `resend_after_s`, sending restarts from the last ack.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.cache import GateCache
from edge.mqtt_settings import MqttSection
from protocol.messages import MAX_SNAPSHOT_BYTES, Ack, EventBatch, SnapshotUpload
from protocol.topics import GateTopic

log = logging.getLogger(__name__)


class JournalSender:
    """What was sent and acked, and the sending itself (the sender's thread, or a shared loop's)."""

    def __init__(
        self,
        cfg: MqttSection,
        cache: GateCache,
        client: mqtt.Client,
        topic: Callable[[GateTopic], str],
        ids: tuple[str, str],
        sending: Callable[[], bool],
        snapshot_path: Callable[[str], Path] | None,
    ) -> None:
        self.cfg, self.cache, self.client, self._topic = cfg, cache, client, topic
        self.site, self.gate = ids
        self._sending = sending  # connected and not closing
        self._snapshot_path = snapshot_path
        self._sent_through = 0
        self._last_progress = time.monotonic()
        self._lock = threading.Lock()

    def restart(self) -> None:
        """Resend everything unacked: the broker may have lost it (after a connect)."""
        with self._lock:
            self._sent_through = 0

    def on_ack(self, ack: Ack) -> None:
        if self.cache.ack_through(ack.seq, ack.epoch):
            self._last_progress = time.monotonic()
        if ack.replay_from is not None:
            with self._lock:
                self._sent_through = min(self._sent_through, ack.replay_from - 1)

    def resend_due(self, now: float) -> float | None:
        """Seconds until the resend timer fires, if anything is in flight."""
        with self._lock:
            if not self._sent_through:
                return None
            return self._last_progress + self.cfg.resend_after_s - now

    def send_some(self) -> None:
        cfg = self.cfg
        with self._lock:
            stalled = time.monotonic() - self._last_progress > cfg.resend_after_s
            if self._sent_through and stalled:
                log.info(
                    "no ack progress for %.0f s; resending from the last ack", cfg.resend_after_s
                )
                self._sent_through = 0
                self._last_progress = time.monotonic()
            start = self._sent_through
        inflight = self.cache.unacked_through(start)
        limit = cfg.window * cfg.batch_size
        while inflight < limit and self._sending():
            events = self.cache.journal_unacked(after_seq=start, limit=cfg.batch_size)
            if not events:
                break
            if start == 0:
                self._last_progress = time.monotonic()
            epochs = {e.epoch for e in events}
            first = {ep: self.cache.epoch_first_seq(ep) or 1 for ep in epochs}
            batch = EventBatch(site=self.site, gate=self.gate, epoch_first_seq=first, events=events)
            self.client.publish(
                self._topic(GateTopic.EVENTS), batch.model_dump_json(), qos=self.cfg.qos
            )
            start = events[-1].seq
            inflight += len(events)
            with self._lock:
                self._sent_through = max(self._sent_through, start)
        if inflight == 0:
            self._upload_one_snapshot()

    def _upload_one_snapshot(self) -> None:
        """Snapshots go only when no decision is waiting, one at a time."""
        if self._snapshot_path is None:
            return
        item = self.cache.next_snapshot_to_upload()
        if item is None:
            return
        epoch, seq, name = item
        path = self._snapshot_path(name)
        try:
            data = path.read_bytes()
        except OSError:
            self.cache.mark_snapshot_sent(seq)  # gone (pruned or never written): nothing to send
            return
        if len(data) > MAX_SNAPSHOT_BYTES:  # central would refuse it; don't wedge on it
            log.warning("snapshot %s is %d bytes, over the wire bound; kept on the gate", name,
                        len(data))  # fmt: skip
            self.cache.mark_snapshot_sent(seq)
            return
        upload = SnapshotUpload(
            name=name, epoch=epoch, seq=seq, jpeg_b64=base64.b64encode(data).decode()
        )
        # Always QoS 1: a snapshot has no ack of its own from central, only the broker's PUBACK.
        info = self.client.publish(self._topic(GateTopic.SNAPSHOT), upload.model_dump_json(), qos=1)
        info.wait_for_publish(timeout=10.0)
        if info.is_published():
            self.cache.mark_snapshot_sent(seq)
