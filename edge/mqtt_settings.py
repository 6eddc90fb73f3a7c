"""The `[mqtt]` section of a gate config, and building a paho client from it."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol import transport


class MqttSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field("", description="mqtt://host:port or mqtts://host:port; empty: no uplink.")
    urls: list[str] = Field(
        default_factory=list,
        description="Broker nodes of a cluster, in the order this gate prefers them; on a lost"
        " or refused link it moves to the next after a jittered pause. Empty: just `url`.",
    )
    failover_jitter_s: float = Field(
        2.0, ge=0, le=60, description="Random pause up to this long before moving to a node."
    )
    username: str = Field("", description="Broker user name (one per gate).")
    password: str = Field("", description="Broker password.")
    ca_file: str = Field("", description="CA certificate for mqtts://; empty: system CAs.")
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive.")
    qos: Literal[0, 1] = Field(
        1,
        description="QoS of this gate's publishes and subscriptions. 1 suits Mosquitto and EMQX;"
        " on NATS every QoS 1 message is a JetStream write and every QoS 1 subscription a"
        " consumer, so run 0 there: nothing counts as sent until central's ack, at any QoS.",
    )
    batch_size: int = Field(500, ge=1, le=500, description="Journal entries per events message.")
    window: int = Field(4, ge=1, description="Batches in flight before waiting for acks.")
    resend_after_s: float = Field(10.0, gt=0, description="No ack progress this long: resend.")
    status_interval_s: float = Field(30.0, gt=0, description="How often status is refreshed.")
    refresh_s: float = Field(
        300.0,
        ge=1,
        description="How often the gate asks for the revocation list and its policy again, on"
        " top of after every connect: what was lost on the way (at QoS 0, or while central's"
        " own link was down) arrives within this long.",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value and urlparse(value).scheme not in ("mqtt", "mqtts"):
            raise ValueError("url must start with mqtt:// or mqtts://")
        return value

    @field_validator("urls")
    @classmethod
    def _schemes(cls, values: list[str]) -> list[str]:
        schemes = {urlparse(v).scheme for v in values}
        if not schemes <= {"mqtt", "mqtts"}:
            raise ValueError("every url must start with mqtt:// or mqtts://")
        if len(schemes) > 1:  # one client has one TLS setting
            raise ValueError("urls must all be mqtt:// or all be mqtts://")
        return values

    def endpoints(self) -> list[str]:
        """Every broker URL this gate may use: `urls`, else `url`, else none."""
        return list(self.urls) or ([self.url] if self.url else [])


def make_client(cfg: MqttSection, client_id: str) -> tuple[mqtt.Client, str, int]:
    """A paho client for this gate's [mqtt] section; returns host and port."""
    return transport.make_client(
        (cfg.endpoints() or [""])[0],
        client_id,
        username=cfg.username,
        password=cfg.password,
        ca_file=cfg.ca_file,
    )


AUTH_FAILURES = transport.AUTH_FAILURES
