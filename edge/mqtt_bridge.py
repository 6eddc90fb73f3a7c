"""Store-and-forward from the gate journal to central over MQTT, plus sync, commands and status.

An entry leaves the journal's unsent state only when central's application ack covers it; a
broker PUBACK is not enough. After any reconnect, or when acks stop coming, sending restarts
from the last ack, so a broker that restarts empty loses nothing.

The bridge reaches the gate only through `GateControl` (remote open, a policy document, what to
report) and records through `Journal`; both are given at construction (edge/assemble.py,
edge/bridge_ports.py). Its parts: the outbox (edge/mqtt_sender.py), when to ask for the delta
and the policy (edge/mqtt_asks.py), what a delta or command does (edge/mqtt_inbound.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from edge.bridge_ports import GateControl, HintSink, NetworkLoop
from edge.cache import GateCache
from edge.journal import Journal, LinkState
from edge.mqtt_asks import SyncAsks
from edge.mqtt_inbound import apply_delta, run_command
from edge.mqtt_links import Subscriptions
from edge.mqtt_sender import JournalSender
from edge.mqtt_settings import MqttSection, make_client
from protocol import topics
from protocol.messages import (
    Ack,
    CentralStatus,
    Command,
    EventType,
    GateState,
    GateStatus,
    SyncAnnouncement,
    SyncDelta,
)
from protocol.policy import PolicyRequest
from protocol.topics import GateTopic
from protocol.transport import Endpoints, connect_refused, guard_callback

__all__ = ["GateControl", "HintSink", "MqttBridge", "NetworkLoop"]

log = logging.getLogger(__name__)
VERSION = "0.1.0"
SEND_POLL_S = 0.2  # the sender thread's poll: how soon another process's journal write is seen
SEND_RETRY_S = 1.0  # after a sender step failed


class MqttBridge:
    """Runs beside the agent: a paho network thread and a sender thread, or a shared loop."""

    def __init__(
        self,
        cfg: MqttSection,
        cache: GateCache,
        journal: Journal,
        control: GateControl,
        link: LinkState | None = None,
        snapshot_path: Callable[[str], Path] | None = None,
        loop: NetworkLoop | None = None,
        hints: HintSink | None = None,
    ) -> None:
        if loop is not None and snapshot_path is not None:
            # An upload waits for its PUBACK, which would stall every bridge on the loop.
            raise ValueError("a bridge on a shared network loop does not upload snapshots")
        ctx = control.live_policy()
        self.cfg, self.site, self.gate, self.cache = cfg, ctx.site, ctx.gate, cache
        self.journal = journal
        self.control = control
        self.link = link or LinkState()
        self.hints = hints
        self.stop = threading.Event()
        self.connected = False
        self.auth_failed = False
        self.rejected = 0
        self.callback_errors = 0
        self.connects = 0
        self._wake = self.link.wake
        self._loop = loop
        self._wake_loop: Callable[[], None] = _nothing
        self._next_status = time.monotonic() + cfg.status_interval_s
        self.asks = SyncAsks(cfg.refresh_s, time.monotonic())
        self.client, self._host, self._port = make_client(
            cfg, f"menjin-gate-{self.site}-{self.gate}"
        )
        self.outbox = JournalSender(
            cfg, cache, self.client, self._topic, (self.site, self.gate),
            lambda: self.connected and not self.stop.is_set(), snapshot_path,
        )  # fmt: skip
        self.endpoints = Endpoints(cfg.endpoints() or [""], jitter_s=cfg.failover_jitter_s)
        self.subs = Subscriptions(
            [
                (self._topic(GateTopic.ACK), cfg.qos),
                (self._topic(GateTopic.CMD), cfg.qos),
                (self._topic(GateTopic.DELTA), cfg.qos),
                (self._topic(GateTopic.POLICY), cfg.qos),
                (topics.sync_topic(self.site), cfg.qos),
                (topics.central_status_topic(), cfg.qos),
            ]
        )
        self.client.will_set(
            self._topic(GateTopic.STATUS),
            GateStatus(state=GateState.OFFLINE).model_dump_json(),
            qos=self.cfg.qos,
            retain=True,
        )
        self.client.on_connect = guard_callback(self._on_connect, self._callback_failed)
        self.client.on_disconnect = guard_callback(self._on_disconnect, self._callback_failed)
        self.client.on_message = guard_callback(self._on_message, self._callback_failed)
        self.client.on_subscribe = guard_callback(self._on_subscribe, self._callback_failed)
        self.client.on_connect_fail = guard_callback(self._on_connect_fail, self._callback_failed)
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-send", daemon=True)

    def _topic(self, kind: GateTopic) -> str:
        return topics.gate_topic(self.site, self.gate, kind)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._next_status = time.monotonic() + self.cfg.status_interval_s
        if self.hints is not None:
            self.hints.start()
        self.client.connect_async(self._host, self._port, keepalive=self.cfg.keepalive_s)
        if self._loop is not None:
            self._wake_loop = self._loop.attach(self.client, self.send_step)
            return
        self.client.loop_start()
        self._sender.start()

    def close(self) -> None:
        self.stop.set()
        self._kick()
        if self.connected:
            info = self.client.publish(
                self._topic(GateTopic.STATUS),
                GateStatus(state=GateState.OFFLINE, at=datetime.now(UTC)).model_dump_json(),
                qos=self.cfg.qos,
                retain=True,
            )
            info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        if self.hints is not None:
            self.hints.close()
        if self._loop is not None:
            self._loop.detach(self.client)
            return
        self.client.loop_stop()
        if self._sender.is_alive():
            self._sender.join(timeout=5.0)

    def notify(self, _seq: int = 0) -> None:
        """A journal entry was written: wake the sender."""
        self._kick()

    def _kick(self) -> None:
        # A shared loop hears only this; a journal that sets link.wake itself (GateJournal) is
        # seen at the loop's poll.
        self._wake.set()
        self._wake_loop()

    @property
    def clock_skew_s(self) -> float | None:
        return self.link.clock_skew_s

    def own_counters(self) -> dict[str, int | bool]:
        """What the bridge itself counted; sent with every status beside the agent's counters."""
        return {
            "mqtt_rejected": self.rejected,
            "mqtt_callback_errors": self.callback_errors,
            "mqtt_connects": self.connects,
            "mqtt_failovers": self.endpoints.failovers,
            "mqtt_suback_refused": self.subs.refused_total,
            "subscriptions_ok": self.subs.ok,
            "pass_hints_unsupported": self.asks.hints_unsupported,
            **(self.hints.counters() if self.hints is not None else {}),
        }

    # --- paho callbacks (network thread; guarded, since one that raises ends that thread) -----

    def _callback_failed(self, _exc: BaseException) -> None:
        self.callback_errors += 1

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            fix = "Fix [mqtt] username/password and restart the agent."
            if connect_refused(client, reason, "this gate's", fix):
                self.auth_failed = True
                self.journal.append(
                    EventType.DEVICE_FAULT, reason="mqtt_auth", details={"error": str(reason)}
                )
            return
        self._subscribe(self.subs.connected())
        self.outbox.restart()
        self.connected = True
        self.connects += 1
        self._kick()
        log.info("MQTT connected to %s:%s", self._host, self._port)
        # Last, as they read the cache and the agent: if they fail, the link above still works
        # and the sender's periodic status tries again.
        self.publish_status()
        self.asks.connected(time.monotonic())
        self.request_sync()
        self.request_policy()

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.connected = False
        if not self.stop.is_set():
            log.warning("MQTT disconnected (%s); paho reconnects with backoff", reason)
            self._fail_over()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        self._fail_over()

    def _fail_over(self) -> None:
        """Point paho's next reconnect at the next node, after a random pause.

        paho retries one host with the same backoff in every gate; the pause (this client's own
        network thread, which has nothing else to do while the link is down) spreads a fleet
        that lost a node over `failover_jitter_s`. A shared loop's thread serves other gates,
        so there the loop holds the pause, and makes the reconnect with its own backoff.
        """
        if self.auth_failed:
            return  # a refused login stays down (see _on_connect)
        pause = self.endpoints.pause_s()
        if self.stop.wait(0.0 if self._loop is not None else pause):
            return  # close() wants no reconnect
        self._host, self._port = self.endpoints.advance()
        # From paho's own thread with the socket closed, connect_async only re-aims the
        # reconnect that its loop is about to make (with its usual backoff).
        self.client.connect_async(self._host, self._port, keepalive=self.cfg.keepalive_s)
        if self._loop is not None:
            self._loop.redial(self.client, pause)

    def _subscribe(self, subs: list[tuple[str, int]]) -> None:
        if not subs:
            return
        result, mid = self.client.subscribe(subs)
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._refused(self.subs.sent(mid, subs))
        else:
            self.subs.not_sent(subs)

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        mid: int,
        codes: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        self._refused(self.subs.answered(mid, [c.value for c in codes]))
        self._kick()  # the ack subscription may be what the sender waits for

    def _refused(self, topics_refused: list[str]) -> None:
        if topics_refused:
            log.warning("broker refused subscriptions %s; retrying with backoff", topics_refused)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self._dispatch(msg)
        except ValidationError as exc:
            self.rejected += 1
            log.warning("rejected message on %s: %s", msg.topic, exc.errors()[:1])
        except Exception:
            self.rejected += 1
            log.exception("handling %s failed", msg.topic)

    def _dispatch(self, msg: mqtt.MQTTMessage) -> None:
        kind = topics.parse_topic(msg.topic).kind
        if kind == GateTopic.ACK:
            self.outbox.on_ack(Ack.model_validate_json(msg.payload))
            self._kick()
        elif kind == GateTopic.CMD:
            command = Command.model_validate_json(msg.payload)
            args = (command, self.cache, self.journal, self.control)
            threading.Thread(target=run_command, args=args, daemon=True).start()
        elif kind == GateTopic.DELTA:
            self._on_delta(SyncDelta.model_validate_json(msg.payload))
        elif kind == GateTopic.POLICY:
            # Verified, counted and journalled (applied or refused) by the gate's policy keeper.
            if self.control.offer_policy(bytes(msg.payload)):
                self.publish_status()  # central sees the new version at once
        elif kind == "sync":
            if (
                SyncAnnouncement.model_validate_json(msg.payload).version
                != self.cache.cache_version
            ):
                self.request_sync()
        elif kind == "central_status":
            status = CentralStatus.model_validate_json(msg.payload)
            self.asks.central_status(status.state == GateState.ONLINE)
            # A retained copy may be hours old; only a live one says what central's clock reads.
            if status.at is not None and not msg.retain:
                self.link.clock_skew_s = (status.at - datetime.now(UTC)).total_seconds()

    def _on_delta(self, delta: SyncDelta) -> None:
        self.asks.answered()
        apply_delta(self.cache, self.hints, delta)
        # Say so at once: the office watches for every gate to report the new version (a lost
        # pass is dead everywhere), and the next periodic status may be 30 s away.
        self.publish_status()

    # --- publishing --------------------------------------------------------------------------

    def request_sync(self) -> None:
        self.client.publish(
            self._topic(GateTopic.SYNC_REQUEST),
            self.asks.sync_request(self.cache.cache_version, time.monotonic()),
            qos=self.cfg.qos,
        )

    def request_policy(self) -> None:
        have = self.control.live_policy().policy_version
        self.client.publish(
            self._topic(GateTopic.POLICY_REQUEST),
            PolicyRequest(have=have).model_dump_json(),
            qos=self.cfg.qos,
        )

    def publish_status(self) -> None:
        last = self.cache.last_sync()
        policy = self.control.live_policy()
        status = GateStatus(
            state=GateState.ONLINE,
            at=datetime.now(UTC),
            version=VERSION,
            cache_version=self.cache.cache_version,
            backlog=self.cache.backlog(),
            clock_skew_s=self.clock_skew_s,
            last_sync=None if last is None else datetime.fromtimestamp(last, UTC),
            counters=self.control.counters() | self.own_counters(),
            policy_version=policy.policy_version,
            lockdown=policy.lockdown,
            emergency_release=policy.emergency_release,
        )
        self.client.publish(
            self._topic(GateTopic.STATUS), status.model_dump_json(), qos=self.cfg.qos, retain=True
        )

    def _send_loop(self) -> None:
        while not self.stop.is_set():
            # In-process journal writes wake us at once; another process (`menjin gate present`
            # while the agent runs) is noticed by this poll.
            self._wake.wait(SEND_POLL_S)
            if self.send_step() is None:
                self.stop.wait(SEND_RETRY_S)

    def send_step(self) -> float | None:
        """One round of the sender's work (its thread's, or a shared loop's).

        Returns the seconds until it must run again at the latest (the next status, the resend
        timer), or None if it failed. Subscriptions to retry and journal writes nobody woke it
        for are left to the caller's poll.
        """
        self._wake.clear()
        if not self.connected or self.stop.is_set():
            return self.cfg.status_interval_s  # on_connect wakes it
        try:
            self._subscribe(self.subs.due())
            # Without the ack subscription central's acks would fall on the floor, and the
            # journal would be resent until the unacked cap drops what central holds.
            if self.subs.holds(self._topic(GateTopic.ACK)):
                self.outbox.send_some()
            now = time.monotonic()
            if now >= self._next_status:
                self._next_status = now + self.cfg.status_interval_s
                self.publish_status()
            if self.asks.gave_up_on_passes(now):
                self.request_sync()  # without passes: the revocations must not wait
            if self.asks.refresh_due(now):
                # Ask again now and then, not only after a connect: an announcement or a policy
                # central sent while its own link was down (lost for good at QoS 0) or that a
                # broker dropped reaches this gate within refresh_s all the same.
                self.request_sync()
                self.request_policy()
        except Exception:
            log.exception("MQTT sender step failed")
            return None
        due = min(self._next_status, self.asks.next_due()) - now
        resend = self.outbox.resend_due(now)
        return max(0.0, due if resend is None else min(due, resend))


def _nothing() -> None:
    """The wake call of a bridge with its own sender thread: the Event is enough."""
