"""The `[mqtt]` section of a gate config, and building a paho client from it."""

from __future__ import annotations

import ssl
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol.transport import no_delay


class MqttSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field("", description="mqtt://host:port or mqtts://host:port; empty: no uplink.")
    username: str = Field("", description="Broker user name (one per gate).")
    password: str = Field("", description="Broker password.")
    ca_file: str = Field("", description="CA certificate for mqtts://; empty: system CAs.")
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive.")
    batch_size: int = Field(100, ge=1, le=500, description="Journal entries per events message.")
    window: int = Field(4, ge=1, description="Batches in flight before waiting for acks.")
    resend_after_s: float = Field(10.0, gt=0, description="No ack progress this long: resend.")
    status_interval_s: float = Field(30.0, gt=0, description="How often status is refreshed.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value and urlparse(value).scheme not in ("mqtt", "mqtts"):
            raise ValueError("url must start with mqtt:// or mqtts://")
        return value


def make_client(cfg: MqttSection, client_id: str) -> tuple[mqtt.Client, str, int]:
    """A paho client (API v2, MQTT 3.1.1) with credentials and TLS set; returns host and port."""
    url = urlparse(cfg.url)
    tls = url.scheme == "mqtts"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password or None)
    if tls:
        client.tls_set(ca_certs=cfg.ca_file or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.on_socket_open = no_delay
    return client, url.hostname or "localhost", url.port or (8883 if tls else 1883)


AUTH_FAILURES = frozenset({134, 135})  # bad user name or password; not authorized
