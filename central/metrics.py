"""Prometheus metrics, one registry per app (so tests can run several apps in one process)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from central.live import LiveHub
from central.store.tables import alerts, gates

if TYPE_CHECKING:
    from central.ingest import Ingest


class Metrics(Collector):
    """Reads the live figures when scraped, instead of keeping a second copy of them."""

    def __init__(self, engine: Engine, hub: LiveHub) -> None:
        self.engine = engine
        self.hub = hub
        self.ingest: Ingest | None = None
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def collect(self) -> Iterable[Metric]:
        counts = self.ingest.counts if self.ingest else {}
        stored = CounterMetricFamily("menjin_events_stored", "Events stored by this replica.")
        stored.add_metric([], counts.get("stored", 0))
        yield stored
        dup = CounterMetricFamily("menjin_events_duplicate", "Duplicate events ignored.")
        dup.add_metric([], counts.get("duplicates", 0))
        yield dup
        rejects = CounterMetricFamily(
            "menjin_messages_rejected", "MQTT messages rejected, by reason.", labels=["reason"]
        )
        for reason, n in self.ingest.rejects.items() if self.ingest else []:
            rejects.add_metric([reason], n)
        yield rejects
        yield from self._ingest_health(counts)
        with self.engine.connect() as conn:
            online = conn.execute(
                select(func.count()).select_from(gates).where(gates.c.online.is_(True))
            ).scalar_one()
            by_kind = conn.execute(
                select(alerts.c.kind, func.count())
                .where(alerts.c.state != "resolved")
                .group_by(alerts.c.kind)
            ).all()
        g = GaugeMetricFamily("menjin_gates_online", "Gates whose status is online.")
        g.add_metric([], online)
        yield g
        a = GaugeMetricFamily("menjin_alerts_open", "Unresolved alerts by kind.", labels=["kind"])
        for kind, n in by_kind:
            a.add_metric([kind], n)
        yield a
        c = GaugeMetricFamily("menjin_stream_clients", "Live stream clients on this replica.")
        c.add_metric([], self.hub.clients)
        yield c

    def _ingest_health(self, counts: Mapping[str, int]) -> Iterable[Metric]:
        """What would otherwise go unseen: survived callback errors, failed or split stores."""
        for name, key, doc in (
            ("menjin_mqtt_callback_errors", "callback_errors", "paho callbacks that raised."),
            ("menjin_store_failures", "store_failures", "Store transactions that failed whole."),
            ("menjin_store_bisections", "store_bisections", "Batches split to isolate a message."),
            ("menjin_live_shed", "live_shed", "Stored events left out of the live stream."),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], counts.get(key, 0))
            yield c
        inbox = self.ingest.inbox if self.ingest else None
        depth = GaugeMetricFamily("menjin_ingest_queue", "Messages waiting for the store loop.")
        depth.add_metric([], len(inbox) if inbox else 0)
        yield depth
        size = GaugeMetricFamily("menjin_ingest_queue_bytes", "Payload bytes waiting to be stored.")
        size.add_metric([], inbox.bytes if inbox else 0)
        yield size

    def render(self) -> bytes:
        return generate_latest(self.registry)
