"""Central's ingest, assembled in one place: who calls whom is read here.

Per replica (every replica runs all of it):
    BrokerLink (link.py)     the MQTT connection; checks every SUBACK, retries refused ones
      -> StoreLoop (store_loop.py)   inbox -> validate (ingest_check) -> store (ingest_commit)
           -> Replies (replies.py)      acks after commit, sync answers
           -> LiveFanout (fanout.py)    stored events and alerts to every replica's streams
    Heartbeat (heartbeat.py) this replica's status topic and the shared one
    Membership (partitions.py)  without $share: the sites this replica subscribes to
Once per cluster (only on the replica that leads each job, central.leadership):
    LeaderJobs (leader_jobs.py)  hole chasing and giving up, offline alerts
    (the retention purge, central.retention, is led the same way)

Events, sync requests and snapshots arrive on shared subscriptions, so replicas split them, or,
on a broker without them (NATS), each replica subscribes to its own sites only (partitions.py);
gate status messages arrive at every replica.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt
from sqlalchemy import Engine

from central.config import CentralSettings
from central.inbox import Inbox
from central.ingest.fanout import LiveFanout, LiveSink
from central.ingest.heartbeat import Heartbeat
from central.ingest.leader_jobs import LeaderJobs
from central.ingest.link import BrokerLink
from central.ingest.partitions import Membership, site_filters
from central.ingest.replies import Replies
from central.ingest.store_loop import StoreLoop
from central.ingest_check import Incoming
from central.leadership import Leadership
from protocol import topics
from protocol.topics import GateTopic

log = logging.getLogger(__name__)


def subscriptions(shared: bool, partitioned: bool) -> list[str]:
    """The filters one replica asks for from the start (partitioned: the per-site ones later)."""
    every_replica = [
        topics.all_gates(GateTopic.STATUS),
        topics.central_live_topic(),
        topics.central_status_topic(),
    ]
    if partitioned:
        return every_replica
    return [
        topics.all_gates(GateTopic.EVENTS, shared=shared),
        topics.all_gates(GateTopic.SYNC_REQUEST, shared=shared),
        topics.all_gates(GateTopic.POLICY_REQUEST, shared=shared),
        topics.all_gates(GateTopic.SNAPSHOT, shared=shared),
        *every_replica,
    ]


class Ingest:
    """One replica's MQTT ingest: the parts below, wired together and started here."""

    def __init__(
        self, settings: CentralSettings, engine: Engine, leadership: Leadership | None = None
    ) -> None:
        self.settings = settings
        self.counts: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.leadership = leadership or Leadership(engine)
        self._own_leadership = leadership is None
        cluster = settings.cluster
        self.filters = subscriptions(settings.mqtt.shared_subscriptions, cluster.partition_sites)
        self.heartbeat = Heartbeat(cluster.replica_name(), settings.ingest.status_interval_s)
        self.membership = (
            Membership(engine, cluster.replica_name(), cluster.member_ttl_s)
            if cluster.partition_sites
            else None
        )
        self.owned_sites: list[str] | None = None  # partitioned: known after the first beat
        self.link = BrokerLink(settings.mqtt, self.filters, self.heartbeat.will(), self.counts)
        replies = Replies(self.link, engine, settings.ingest, self.counts)
        self.fanout = LiveFanout(self.link, self.counts, self.rejects)
        self.store_loop = StoreLoop(
            settings.ingest, engine, replies, self.fanout, self.counts, self.rejects
        )
        self.leader_jobs = LeaderJobs(
            settings.ingest, engine, self.leadership, replies, self.fanout
        )
        self.replies = replies
        self.link.on_message = self._route
        self.link.on_connected = lambda: self.publish_central_status()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self.store_loop.run, args=(self._stop,), name="ingest",
                             daemon=True),
            threading.Thread(target=self._housekeeping_loop, name="ingest-hk", daemon=True),
        ]  # fmt: skip

    # --- what the app and the tests see ------------------------------------------------------

    @property
    def connected(self) -> threading.Event:
        return self.link.connected

    @property
    def client(self) -> mqtt.Client:
        return self.link.client

    @property
    def inbox(self) -> Inbox:
        return self.store_loop.inbox

    @property
    def live_sink(self) -> LiveSink | None:
        return self.fanout.sink

    @live_sink.setter
    def live_sink(self, sink: LiveSink | None) -> None:
        self.fanout.sink = sink

    def ready(self) -> bool:
        """Connected, and the broker granted the events subscription(s)."""
        if self.membership is not None and self.owned_sites is None:
            return False
        return self.link.all_granted(f"/{GateTopic.EVENTS.value}")

    def announce(self, site: str, version: int) -> None:
        self.replies.announce(site, version)

    def publish_central_status(self) -> None:
        self.heartbeat.beat(self.link)

    def accept(self, item: Incoming) -> None:
        self.store_loop.accept(item)

    def process(self, items: list[Incoming]) -> None:
        self.store_loop.process(items)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.link.start()
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        if self.link.connected.is_set():
            self.heartbeat.goodbye(self.link)
        self.link.close()
        for t in self._threads:
            t.join(timeout=5.0)
        if self._own_leadership:
            self.leadership.close()
        if self.membership is not None:
            self.membership.leave()

    def _route(self, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == topics.central_live_topic():
            self.fanout.heard(bytes(msg.payload))
        elif msg.topic == topics.central_status_topic():
            self.heartbeat.heard_shared(self.link, bytes(msg.payload))
        else:
            self.accept(Incoming(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def _heartbeat_tick(self) -> None:
        self.heartbeat.tick(self.link)

    def _repartition(self) -> None:
        if self.membership is None:
            return
        self.membership.beat()
        owned = self.membership.owned_sites()
        if owned != self.owned_sites:
            log.info("this replica stores %d sites: %s", len(owned), owned[:20])
            self.owned_sites = owned
            self.link.want(self.filters + site_filters(owned))

    def _housekeeping_loop(self) -> None:
        jobs: list[Callable[[], None]] = [
            self._heartbeat_tick,  # per replica
            self._repartition,  # per replica: its share of the sites (partitioned only)
            self.link.retry_refused,  # per replica
            self.leader_jobs.tick,  # only the jobs this replica leads
        ]
        while not self._stop.wait(1.0):
            for job in jobs:
                try:
                    job()
                except Exception:
                    log.exception("ingest housekeeping failed")
