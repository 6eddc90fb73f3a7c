"""Gate settings: a TOML file from `menjin gate init`, overridable by MENJIN_<SECTION>__<KEY>."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from nacl.signing import VerifyKey
from pydantic import BaseModel, ConfigDict, Field

from edge.decide import GateContext
from edge.devices.factory import DoorSection, ReaderSection, RelaySection, ThermometerSection
from edge.feedback import FeedbackSection
from edge.mqtt_settings import MqttSection
from protocol.epass import key_id_of
from protocol.gate_policy import GatePolicy
from protocol.keyfiles import TrustedKey
from protocol.settings_file import ConfigError, TomlSettings, load_settings, render_toml

__all__ = ["ConfigError", "GateSettings", "load_gate_settings", "render_toml"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateSection(GatePolicy):
    site: str = Field(description="Compound (site) id this gate belongs to.")
    gate: str = Field(description="This gate's id, unique within the site.")
    passback_window_s: int = Field(60, ge=0, description="Re-use window on two-way gates, seconds.")
    clock_skew_s: int = Field(300, ge=0, description="Tolerance on pass validity times, seconds.")


class KeysSection(_Section):
    trusted: list[TrustedKeyModel] = Field(
        default_factory=list, description="Public keys whose passes this gate accepts."
    )
    policy: list[TrustedKeyModel] = Field(
        default_factory=list,
        description="Central's policy keys, pinned at provisioning: only a document signed by"
        " one of them changes this gate's policy (none: the TOML's policy only).",
    )

    def policy_keys(self) -> dict[str, VerifyKey]:
        """The pinned policy keys by key id (hex); ValueError on a wrong key id."""
        out: dict[str, VerifyKey] = {}
        for n, key in enumerate(self.policy, 1):
            vk = TrustedKey(key.key_id, key.public_key).verify_key()
            if key.key_id.lower() != key_id_of(vk).hex():
                actual = key_id_of(vk).hex()
                raise ValueError(f"keys.policy #{n}: its public key has key id {actual}")
            out[key.key_id.lower()] = vk
        return out

    def verify_keys(self) -> dict[bytes, VerifyKey]:
        """The trusted keys by key id; ValueError on a wrong key id or two keys sharing one."""
        out: dict[bytes, VerifyKey] = {}
        for n, key in enumerate(self.trusted, 1):
            vk = TrustedKey(key.key_id, key.public_key).verify_key()
            key_id = key_id_of(vk)
            if key.key_id.lower() != key_id.hex():
                raise ValueError(f"keys.trusted #{n}: its public key has key id {key_id.hex()}")
            if key_id in out:
                # A pass names its key by these 4 bytes only, so a gate could not tell which of
                # the two signed it: refuse the configuration rather than guess or try both.
                raise ValueError(f"keys.trusted #{n}: another trusted key has key id {key.key_id}")
            out[key_id] = vk
        return out


class TrustedKeyModel(_Section):
    key_id: str = Field(description="8 hex digits naming the key inside passes.")
    public_key: str = Field(description="Ed25519 public key, 64 hex digits.")


class CacheSection(_Section):
    path: str = Field(
        "gate-journal.db",
        description="The gate's SQLite file (journal of unsent decisions, revocations, policy);"
        " relative to the config file.",
    )
    journal_acked_days: float = Field(
        7.0, description="Keep central-acked journal entries this long."
    )
    journal_max_unacked: int = Field(500_000, description="Unsent entries kept before dropping.")


class AgentSection(_Section):
    debounce_s: float = Field(3.0, ge=0, description="The same code within this long is one read.")
    temperature_timeout_s: float = Field(3.0, gt=0, description="Wait this long for a reading.")
    retest_pause_s: float = Field(2.0, ge=0, description="Pause before re-testing a fever.")
    snapshot_dir: str = Field("snapshots", description="Snapshot JPEGs; relative to the config.")
    snapshot_max_files: int = Field(500, ge=1, description="Keep at most this many snapshots.")
    snapshot_max_mb: float = Field(100.0, gt=0, description="...and at most this many MB.")
    snapshot_max_days: float = Field(
        7.0, gt=0, description="...and none older than this (faces are personal data)."
    )
    prune_interval_s: float = Field(3600.0, gt=0, description="How often the cache is pruned.")


KeysSection.model_rebuild()


class GateSettings(TomlSettings):
    """Everything the gate agent and the gate CLI need to know."""

    gate: GateSection = Field(description="Identity and policy of this gate.")
    keys: KeysSection = Field(default_factory=KeysSection, description="Trusted signing keys.")
    cache: CacheSection = Field(default_factory=CacheSection, description="The gate's SQLite file.")
    reader: ReaderSection = Field(default_factory=ReaderSection, description="QR reader.")
    thermometer: ThermometerSection = Field(
        default_factory=ThermometerSection, description="Body thermometer."
    )
    relay: RelaySection = Field(default_factory=RelaySection, description="Door strike relay.")
    door: DoorSection = Field(default_factory=DoorSection, description="Door contact.")
    agent: AgentSection = Field(default_factory=AgentSection, description="Agent behaviour.")
    feedback: FeedbackSection = Field(
        default_factory=FeedbackSection, description="Spoken prompts and the text display."
    )
    mqtt: MqttSection = Field(default_factory=MqttSection, description="Uplink to central.")

    def cache_path(self) -> Path:
        return self.resolve(self.cache.path)

    def snapshot_dir(self) -> Path:
        return self.resolve(self.agent.snapshot_dir)

    def context(self) -> GateContext:
        """The pure policy view of these settings, for `decide`."""
        trusted = self.keys.verify_keys()
        g = self.gate
        return GateContext(
            site=g.site,
            gate=g.gate,
            trusted=trusted,
            direction=g.direction,
            tz=ZoneInfo(g.timezone),
            temperature=g.temperature,
            fever_threshold_c=g.fever_threshold,
            anti_passback=g.anti_passback,
            clock_skew_s=g.clock_skew_s,
            passback_window_s=g.passback_window_s,
            live_code_kinds=frozenset(g.live_code_kinds),
        )


def load_gate_settings(path: Path) -> GateSettings:
    """Read a gate config file; raises ConfigError with a readable message."""
    settings = load_settings(GateSettings, path)
    try:
        settings.context()
        settings.keys.policy_keys()
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return settings
