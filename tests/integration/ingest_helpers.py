"""Central ingest and a gate bridge in-process on a real broker, for the ingest tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, select

from central.config import CentralSettings, ClusterSection
from central.ingest import Ingest
from central.store import presence
from central.store.db import make_engine, upgrade
from central.store.tables import alerts
from edge.cache import GateCache
from edge.mqtt_bridge import MqttBridge
from edge.mqtt_settings import MqttSection
from protocol.messages import EventType
from tests.integration.agent_helpers import BareGate, bare_bridge, wait_for

SITE = "ingest-site"
FAST = {"gap_replay_after_s": 0.5, "max_replays": 2, "offline_grace_s": 1.0,
        "status_interval_s": 1.0}  # fmt: skip


def raw_client(
    port: int, username: str = "", password: str = "", client_id: str = ""
) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id)
    if username:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    wait_for(client.is_connected, 5, "a raw MQTT client connected")
    return client


@dataclass
class Central:
    ingest: Ingest
    engine: Engine
    url: str

    def alerts(self, kind: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(alerts).where(alerts.c.kind == kind)).mappings().all()
        return [dict(r) for r in rows]


def central_settings(url: str, mqtt: dict[str, object], **ingest: object) -> CentralSettings:
    return CentralSettings(
        database={"url": url},
        mqtt=mqtt,
        ingest=FAST | ingest,
        auth={"secret": "x" * 32},
    )


@contextmanager
def running_central(
    workdir: Path, mqtt: dict[str, object], gates: tuple[str, ...] = ("east", "west"),
    site: str = SITE, db_url: str = "", cluster: dict[str, object] | None = None,
    wait_ready: bool = True, **ingest: object,
) -> Iterator[Central]:  # fmt: skip
    """An Ingest on db_url or a SQLite file in workdir (reused if there), with these gates;
    subscribed (ready) before it is handed over, unless wait_ready is False."""
    url = db_url or f"sqlite:///{workdir / 'central.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        for gate in gates:
            presence.register_gate(conn, site, gate, datetime.now(UTC))
    settings = central_settings(url, mqtt, **ingest)
    if cluster:
        settings = settings.model_copy(update={"cluster": ClusterSection(**cluster)})
    ingest_ = Ingest(settings, engine)
    ingest_.start()
    try:
        assert ingest_.connected.wait(10)
        # Connected is not subscribed: a message published before the broker granted the
        # events filter is dropped (no session), so wait for the SUBACK as /readyz does.
        if wait_ready:
            wait_for(ingest_.ready, 10, "central's subscriptions granted")
        yield Central(ingest_, engine, url)
    finally:
        ingest_.close()
        engine.dispose()


@dataclass
class Gate:
    """A bridge with no agent behind it (tests of the bridge and ingest alone)."""

    bridge: MqttBridge
    bare: BareGate

    @property
    def cache(self) -> GateCache:
        return self.bare.cache

    @property
    def opened(self) -> list[float]:
        return self.bare.opened

    def journal(self, event_type: EventType, **fields: Any) -> int:
        return self.bare.append(event_type, **fields)


@contextmanager
def running_gate(
    workdir: Path, cfg: MqttSection, gate: str = "east", site: str = SITE
) -> Iterator[Gate]:
    cache = GateCache(workdir / f"{gate}.db")
    snaps = workdir / "snaps"
    g = Gate(*bare_bridge(cfg, cache, site, gate, snapshot_path=lambda name: snaps / name))
    g.bridge.start()
    try:
        wait_for(lambda: g.bridge.connected, 10, f"gate {gate} connected")
        yield g
    finally:
        g.bridge.close()
        cache.close()
