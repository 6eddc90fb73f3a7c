"""Shared setup for agent tests: keys, a gate config with device sections, passes, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nacl.signing import SigningKey

from edge.cache import GateCache
from protocol.epass import HolderKind, PassData, encode_pass, key_id_of
from protocol.keyfiles import init_key_dir, load_signing_key
from protocol.messages import GateEvent
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
