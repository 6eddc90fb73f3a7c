"""Central settings: a TOML file (`menjin central serve --config`), overridable by environment."""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol.settings_file import ConfigError, TomlSettings, load_settings
from protocol.topics import NEW_ID_RULE, valid_new_id

DEMO_SECRET = "change-me-demo-only"  # noqa: S105 - the placeholder that is rejected outside the demo


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSection(_Section):
    url: str = Field("sqlite:///central.db", description="SQLAlchemy URL; sqlite or postgresql.")


class MqttSection(_Section):
    url: str = Field("mqtt://127.0.0.1:1883", description="Broker URL, mqtt:// or mqtts://.")
    urls: list[str] = Field(
        default_factory=list,
        description="Broker URLs (the cluster's nodes) to fail over between, in order, with"
        " jitter; one scheme for all; empty: url alone.",
    )
    username: str = Field("", description="Central's broker user.")
    password: str = Field("", description="Central's broker password.")
    ca_file: str = Field("", description="CA for mqtts://.")
    client_id: str = Field("", description="Unique per replica; empty: generated.")
    public_url: str = Field("", description="URL gates use to reach the broker; empty: url.")
    qos: Literal[0, 1] = Field(
        1,
        description="QoS of central's subscriptions and publishes. 1 suits Mosquitto and EMQX; on"
        " NATS every QoS 1 message is a JetStream write and every QoS 1 subscription a consumer,"
        " so run 0 there: exactly-once comes from the journal's acks, not from the broker.",
    )
    shared_subscriptions: bool = Field(
        True, description="Use $share/ so replicas split the load; off for brokers without it."
    )

    @field_validator("urls")
    @classmethod
    def _one_scheme(cls, urls: list[str]) -> list[str]:
        schemes = {urlparse(u).scheme for u in urls}
        if schemes - {"mqtt", "mqtts"} or len(schemes) > 1:
            raise ValueError("urls: all mqtt:// or all mqtts://")
        return urls

    def endpoints(self) -> list[str]:
        return self.urls or [self.url]


class ClusterSection(_Section):
    replica: str = Field(
        "",
        description="This replica's name, unique in the cluster and stable across restarts (its"
        " retained status topic is named after it); empty: the host name.",
    )
    partition_sites: bool = Field(
        False,
        description="Share ingest without $share (NATS): each live replica subscribes only to"
        " its share of the sites, by rendezvous hash over the replicas' heartbeats.",
    )
    member_ttl_s: float = Field(
        10.0, gt=0, description="A replica whose heartbeat is older is gone; others take its sites."
    )

    @field_validator("replica")
    @classmethod
    def _valid(cls, name: str) -> str:
        if name and not valid_new_id(name):
            raise ValueError(f"cluster.replica: {NEW_ID_RULE}")
        return name

    def replica_name(self) -> str:
        if self.replica:
            return self.replica
        host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:48].lstrip("_.-")
        return host or "central"


class KeysSection(_Section):
    signing: str = Field("keys", description="Key directory (menjin keys init) central signs with.")
    trusted: list[str] = Field(
        default_factory=list, description="More key directories gates should trust (rotation)."
    )
    policy: str = Field(
        "policy-keys",
        description="Key directory of the first policy key (made at first start if missing).",
    )
    ring: str = Field("keyring", description="Where keys made by `POST /api/v1/keys` are kept.")


class HttpSection(_Section):
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8080, ge=1, le=65535, description="API port.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR networks of reverse proxies whose X-Forwarded-For is"
        " believed for the client address (audit log, login limits); empty: the TCP peer.",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Request bodies over this get 413, counted while reading, before parsing"
        " and authentication.",
    )
    max_import_bytes: int = Field(
        6 * 1024 * 1024,
        ge=1024,
        description="The body limit of the sheet uploads, POST /api/v1/passes/import and POST"
        " /api/v1/imports (a CSV or XLSX of up to 5 MB).",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            ipaddress.ip_network(proxy, strict=False)  # ValueError names the bad entry
        return proxies


class IngestSection(_Section):
    max_payload_bytes: int = Field(512 * 1024, description="Larger MQTT payloads are rejected.")
    batch_messages: int = Field(200, ge=1, description="Messages stored per transaction at most.")
    batch_wait_ms: int = Field(
        0, ge=0, description="Wait this long to fill a transaction (0: take what is queued)."
    )
    batch_max_bytes: int = Field(
        2 * 2**20, ge=1, description="Payload bytes stored per transaction at most (one fits)."
    )
    queue_max_messages: int = Field(
        2000, ge=1, description="Messages waiting for the store loop at most; then back-pressure."
    )
    queue_max_bytes: int = Field(
        16 * 2**20, ge=1, description="Payload bytes waiting for the store loop at most."
    )
    queue_block_s: float = Field(
        2.0, gt=0, le=10, description="A full queue holds the MQTT reader this long, then sheds."
    )
    gap_replay_after_s: float = Field(3.0, gt=0, description="A hole this old: ask for replay.")
    max_replays: int = Field(5, ge=1, description="Replay requests before events count as lost.")
    offline_grace_s: float = Field(120.0, gt=0, description="Offline this long: alert.")
    status_interval_s: float = Field(10.0, gt=0, description="Central status heartbeat.")
    delta_max_changes: int = Field(5000, ge=1, description="More changes: send a snapshot.")


class AuthSection(_Section):
    secret: str = Field(
        DEMO_SECRET,
        description="Signs the console's session cookie and derives its CSRF tokens; at least"
        " 16 characters, must be changed (changing it logs every console user out).",
    )
    token_ttl_s: int = Field(12 * 3600, gt=0, description="Access token lifetime.")
    demo: bool = Field(False, description="Allow the placeholder secret (demo only).")
    login_free_failures: int = Field(
        5, ge=1, description="Failed logins for one user name before back-off starts."
    )
    login_free_failures_per_address: int = Field(
        20, ge=1, description="Failed logins from one client address before back-off starts."
    )
    login_backoff_s: float = Field(
        1.0, gt=0, description="First back-off delay; it doubles with each further failure."
    )
    login_backoff_max_s: float = Field(300.0, gt=0, description="The back-off delay's cap.")
    login_reset_s: float = Field(
        900.0, gt=0, description="Failures this long ago are forgotten (and pruned)."
    )
    hash_workers: int = Field(
        0, ge=0, description="Password hashes computed at once; 0: one per CPU core."
    )
    hash_queue: int = Field(
        32, ge=0, description="Logins waiting for a hash worker at most; more get 503."
    )


class ConsoleSection(_Section):
    timezone: str = Field("Asia/Shanghai", description="The site's time zone for the console.")
    alert_group_s: float = Field(
        600.0, gt=0, description="Alerts of one kind at one gate this close together show as one."
    )


class RetentionSection(_Section):
    events_days: float = Field(365.0, gt=0, description="Events older than this are purged.")
    snapshots_days: float = Field(90.0, gt=0, description="Snapshots older than this are purged.")


class SiteSection(_Section):
    office: str = Field(
        "",
        max_length=60,
        description="Issuing office printed on the site's cards, e.g. 某社区居委会.",
    )
    timezone: str = Field(
        "Asia/Shanghai", description="IANA time zone the site's cards print their times in."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name


class CardsSection(_Section):
    font: str = Field(
        "", description="TTF/OTF/TTC with Chinese glyphs for printed cards; empty: ask fontconfig."
    )
    font_index: int = Field(0, ge=0, description="Face number inside a TTC collection font.")


class CentralSettings(TomlSettings):
    """Everything `menjin central serve` needs."""

    database: DatabaseSection = Field(default_factory=DatabaseSection, description="Storage.")
    mqtt: MqttSection = Field(default_factory=MqttSection, description="Broker.")
    cluster: ClusterSection = Field(
        default_factory=ClusterSection, description="This replica among several."
    )
    keys: KeysSection = Field(default_factory=KeysSection, description="Signing keys.")
    http: HttpSection = Field(default_factory=HttpSection, description="HTTP API.")
    ingest: IngestSection = Field(default_factory=IngestSection, description="Event ingest.")
    auth: AuthSection = Field(default_factory=AuthSection, description="API authentication.")
    console: ConsoleSection = Field(default_factory=ConsoleSection, description="Web console.")
    retention: RetentionSection = Field(
        default_factory=RetentionSection, description="How long data is kept."
    )
    sites: dict[str, SiteSection] = Field(
        default_factory=dict, description="Per-site settings, one [sites.<site>] table each."
    )
    cards: CardsSection = Field(default_factory=CardsSection, description="Printed pass cards.")

    @field_validator("auth")
    @classmethod
    def _real_secret(cls, auth: AuthSection) -> AuthSection:
        if auth.secret == DEMO_SECRET and not auth.demo:
            raise ValueError("auth.secret is the demo placeholder; set a real secret")
        if len(auth.secret) < 16:
            raise ValueError("auth.secret must be at least 16 characters")
        return auth

    def database_url(self) -> str:
        """The URL with a relative SQLite path resolved beside the config file."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite://":
            return prefix + str(self.resolve(url[len(prefix) :]))
        return url

    def site(self, site: str) -> SiteSection:
        """The site's table, or the defaults for a site the file does not list."""
        return self.sites.get(site) or SiteSection()

    def signing_dir(self) -> Path:
        return self.resolve(self.keys.signing)

    def policy_dir(self) -> Path:
        return self.resolve(self.keys.policy)

    def ring_dir(self) -> Path:
        return self.resolve(self.keys.ring)


def load_central_settings(path: Path) -> CentralSettings:
    return load_settings(CentralSettings, path)


__all__ = ["CentralSettings", "ConfigError", "load_central_settings"]
