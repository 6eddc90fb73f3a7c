"""Central's paho client: API v2, MQTT 3.1.1, credentials and TLS from [mqtt]."""

from __future__ import annotations

import ssl
import uuid
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from central.config import MqttSection
from protocol.transport import no_delay

AUTH_FAILURES = frozenset({134, 135})


def make_client(cfg: MqttSection, role: str) -> tuple[mqtt.Client, str, int]:
    url = urlparse(cfg.url)
    tls = url.scheme == "mqtts"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=cfg.client_id or f"menjin-central-{role}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password or None)
    if tls:
        client.tls_set(ca_certs=cfg.ca_file or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=1, max_delay=15)
    client.on_socket_open = no_delay
    return client, url.hostname or "localhost", url.port or (8883 if tls else 1883)
