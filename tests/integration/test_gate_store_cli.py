"""`gate present` on the agent's own path; the store's new name; local overrides from the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edge.assemble import assemble_gate, migrate_store_name, open_store
from edge.cache import GateCache
from edge.config import load_gate_settings
from edge.decide import TemperaturePolicy
from edge.gate import DeviceFactories
from edge.live_policy import PolicyHolder
from protocol.keyfiles import load_public_key
from protocol.messages import EventType
from tests.integration.agent_helpers import journal
from tests.integration.test_cli import gate, issue, menjin, present

__all__ = ["gate"]  # the fixture, shared with test_cli


def test_present_re_tests_a_fever_as_the_agent_does(gate: tuple[Path, Path]) -> None:
    keys, config = gate
    with config.open("a", encoding="utf-8") as fh:
        fh.write("\n[agent]\nretest_pause_s = 0\n")
    code, out = present(config, issue(keys), "--at", "2026-06-01T09:00", "--temp", "38.4")
    assert (code, out["reason"]) == (1, "fever")
    [entry] = [e for e in journal(load_gate_settings(config).cache_path())
               if e.type is EventType.DECISION]  # fmt: skip
    # The agent's re-test ran (a second reading), and the decision names its policy version.
    assert entry.details["first_reading_c"] == 38.4
    assert entry.details["retest_c"] == 38.4
    assert entry.details["policy_version"] == 0


def test_init_names_the_store_for_what_it_holds(gate: tuple[Path, Path]) -> None:
    _, config = gate
    assert load_gate_settings(config).cache_path().name == "east-journal.db"


def test_an_old_cache_file_is_renamed_with_its_wal(tmp_path: Path) -> None:
    old = tmp_path / "east-cache.db"
    cache = GateCache(old)
    cache.revoke("00000000000000aa", "lost")
    # A second connection keeps the WAL from being checkpointed away at close.
    reader = GateCache(old)
    cache.close()
    assert (tmp_path / "east-cache.db-wal").exists()
    new = tmp_path / "east-journal.db"
    assert migrate_store_name(new) == old
    reader.close()
    assert not old.exists() and new.exists()
    reopened = GateCache(new)
    try:
        assert reopened.is_revoked("00000000000000aa")
    finally:
        reopened.close()
    assert migrate_store_name(new) is None  # done once


def test_open_store_migrates_a_gate_on_the_old_default(gate: tuple[Path, Path]) -> None:
    keys, config = gate
    settings = load_gate_settings(config)
    present(config, issue(keys), "--at", "2026-06-01T09:00", "--temp", "36.4")
    settings.cache_path().rename(settings.cache_path().with_name("east-cache.db"))
    store = open_store(settings)
    try:
        assert store.path.name == "east-journal.db" and store.last_seq() == 1
    finally:
        store.close()


def test_lockdown_and_release_from_the_cli(gate: tuple[Path, Path]) -> None:
    keys, config = gate
    code, out, err = menjin("gate", "lockdown", "on", "--config", str(config), "--mode", "full")
    assert code == 0, err
    assert json.loads(out)["lockdown"] == "full"
    code, result = present(config, issue(keys), "--at", "2026-06-01T09:00", "--temp", "36.4")
    assert (code, result["reason"]) == (1, "lockdown")
    code, out, _ = menjin("gate", "release", "on", "--config", str(config))
    assert json.loads(out) == {"lockdown": "full", "emergency_release": True, "policy_version": 0}
    menjin("gate", "lockdown", "off", "--config", str(config))
    code, out, _ = menjin("gate", "release", "off", "--config", str(config))
    assert json.loads(out)["emergency_release"] is False and json.loads(out)["lockdown"] is None
    types = [e.type for e in journal(load_gate_settings(config).cache_path())]
    assert types.count(EventType.LOCKDOWN) == 2 and types.count(EventType.EMERGENCY_RELEASE) == 2


class SwappingThermometer:
    """Reads a fever, and while doing so the live policy changes to temperature `off`."""

    def __init__(self, swap: Callable[[], None]) -> None:
        self.swap = swap

    def read_celsius(self, timeout: float) -> float | None:
        self.swap()
        return 38.6

    def close(self) -> None:
        """Nothing to close."""


def test_a_policy_swapped_mid_presentation_does_not_split_it(gate: tuple[Path, Path]) -> None:
    keys, config = gate
    settings = load_gate_settings(config)
    holder: list[PolicyHolder] = []

    def swap() -> None:
        ctx = holder[0].current()
        holder[0].swap(replace(ctx, temperature=TemperaturePolicy.OFF, policy_version=9))

    devices = DeviceFactories(thermometer=lambda: SwappingThermometer(swap))
    assembled = assemble_gate(settings, devices, uplink=False)
    holder.append(assembled.agent.policy.holder)
    try:
        assembled.agent.start_devices(wait_s=1.0)
        decision, _ = assembled.agent.present(issue(keys, start="2020-01-01", end="2100-01-01"))
    finally:
        assembled.agent.close_devices()
        assembled.close()
    # Decided on the policy it started with (required: a fever denies), not on the new one.
    assert decision.reason.value == "fever"
    [entry] = [e for e in journal(settings.cache_path()) if e.type is EventType.DECISION]
    assert entry.details["policy_version"] == 0


def test_init_pins_the_policy_keys_it_is_given(tmp_path: Path) -> None:
    for name in ("keys", "policy"):
        assert menjin("keys", "init", str(tmp_path / name))[0] == 0
    config = tmp_path / "gate.toml"
    code, _, err = menjin("gate", "init", "--site", "s1", "--gate", "east", "--keys",
                          str(tmp_path / "keys"), "--policy-keys", str(tmp_path / "policy"),
                          "--out", str(config))  # fmt: skip
    assert code == 0, err
    pinned = load_gate_settings(config).keys.policy_keys()
    assert list(pinned) == [load_public_key(tmp_path / "policy").key_id]
