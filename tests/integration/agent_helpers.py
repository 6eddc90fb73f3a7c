"""Shared setup for agent tests: keys, a gate config with device sections, passes, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from edge.cache import GateCache
from edge.decide import GateContext
from edge.mqtt_bridge import MqttBridge
from edge.mqtt_settings import MqttSection
from protocol.epass import HolderKind, PassData, encode_pass, key_id_of
from protocol.keyfiles import init_key_dir, load_signing_key
from protocol.messages import EventType, GateEvent
from protocol.settings_file import render_toml


def make_keys(tmp_path: Path) -> SigningKey:
    init_key_dir(tmp_path / "keys")
    return load_signing_key(tmp_path / "keys")


def write_config(
    tmp_path: Path,
    key: SigningKey,
    sections: dict[str, dict[str, object]],
    gate: dict[str, object] | None = None,
) -> Path:
    """A gate config trusting key, with the given device/agent sections."""
    path = tmp_path / "gate.toml"
    base: dict[str, object] = {"site": "s1", "gate": "east", "direction": "in"}
    text = render_toml(
        {"gate": base | (gate or {}), **sections},  # type: ignore[dict-item]
        {
            "keys.trusted": [
                {
                    "key_id": key_id_of(key.verify_key).hex(),
                    "public_key": bytes(key.verify_key).hex(),
                }
            ]
        },
    )
    path.write_text(text, encoding="utf-8")
    return path


def issue(key: SigningKey, site: str = "s1", days: int = 30, **changes: object) -> str:
    now = datetime.now(UTC)
    fields: dict[str, object] = {
        "pass_id": __import__("os").urandom(8),
        "site": site,
        "kind": HolderKind.RESIDENT,
        "valid_from": int((now - timedelta(days=1)).timestamp()),
        "valid_until": int((now + timedelta(days=days)).timestamp()),
        "display_name": "张*华",
    } | changes
    return encode_pass(PassData(**fields), key)  # type: ignore[arg-type]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def journal(cache_path: Path) -> list[GateEvent]:
    """Every entry of a gate's journal, read through a fresh connection."""
    cache = GateCache(cache_path)
    try:
        return cache.journal_unacked(limit=100_000)
    finally:
        cache.close()


class BareGate:
    """The gate side of a bridge with no agent or devices: journals into the store as it is.

    Implements Journal and GateControl, for tests of the bridge alone; `counter_values` is what
    it reports as the agent's counters.
    """

    def __init__(self, cache: GateCache, site: str, gate: str) -> None:
        self.cache = cache
        self.ctx = GateContext(site=site, gate=gate, trusted={})
        self.opened: list[float] = []
        self.reasons: list[str | None] = []
        self.counter_values: Callable[[], dict[str, int | bool]] = dict

    def append(self, event_type: EventType, **fields: Any) -> int:
        self.reasons.append(fields.get("reason"))
        return self.cache.journal_append(event_type, datetime.now(UTC), **fields)

    def remote_open(self) -> bool:
        self.opened.append(time.monotonic())
        return True

    def offer_policy(self, raw: bytes) -> bool:
        return False

    def live_policy(self) -> GateContext:
        return self.ctx

    def counters(self) -> dict[str, int | bool]:
        return self.counter_values()


def bare_bridge(
    cfg: MqttSection, cache: GateCache, site: str, gate: str, **kwargs: Any
) -> tuple[MqttBridge, BareGate]:
    bare = BareGate(cache, site, gate)
    return MqttBridge(cfg, cache, bare, bare, **kwargs), bare
