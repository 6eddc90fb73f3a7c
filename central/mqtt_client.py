"""Central's paho client: API v2, MQTT 3.1.1, credentials and TLS from [mqtt]."""

from __future__ import annotations

import uuid

import paho.mqtt.client as mqtt

from central.config import MqttSection
from protocol import transport

AUTH_FAILURES = transport.AUTH_FAILURES


def make_client(cfg: MqttSection, role: str) -> tuple[mqtt.Client, str, int]:
    """A paho client for central's [mqtt] section; each replica gets its own client id."""
    client_id = cfg.client_id or f"menjin-central-{role}-{uuid.uuid4().hex[:8]}"
    return transport.make_client(
        cfg.endpoints()[0], client_id, username=cfg.username, password=cfg.password,
        ca_file=cfg.ca_file, max_delay=15,
    )  # fmt: skip
