"""Where a gate is put together: store, journal, live policy, devices, agent and uplink.

`menjin gate run`, `menjin gate present`, the tests and the benchmarks all build a gate with
`assemble_gate`, so who calls whom is read here and nowhere else:

    store (GateCache) <- journal (GateJournal) <- policy keeper -> holder (the live GateContext)
    agent (GateAgent: devices, decide, relay) -> journal, policy keeper
    bridge (MqttBridge) -> journal, link state, agent as GateControl, pass hints
    pass hints (PassHints: a delta's device-bound passes pre-verified) -> store, holder
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.cache import CacheError, GateCache, Retention
from edge.config import GateSettings
from edge.gate import DeviceFactories, GateAgent
from edge.journal import GateJournal, LinkState
from edge.live_policy import PolicyHolder, PolicyKeeper
from edge.mqtt_bridge import MqttBridge
from edge.pass_hints import PassHints

log = logging.getLogger(__name__)

# The file's name before it said what it holds (the only copy of unsent decisions).
LEGACY_SUFFIX, STORE_SUFFIX = "-cache.db", "-journal.db"


def legacy_store(path: Path) -> Path | None:
    """The old `*-cache.db` a gate configured for `*-journal.db` still has, if any."""
    if path.exists() or not path.name.endswith(STORE_SUFFIX):
        return None
    old = path.with_name(path.name[: -len(STORE_SUFFIX)] + LEGACY_SUFFIX)
    return old if old.exists() else None


def migrate_store_name(path: Path) -> Path | None:
    """Rename a gate's old `*-cache.db` (with -wal and -shm) to the configured `*-journal.db`."""
    old = legacy_store(path)
    if old is None:
        return None
    # The WAL first: a main file without its WAL would lose the last commits.
    for suffix in ("-wal", "-shm"):
        side = old.with_name(old.name + suffix)
        if side.exists():
            side.rename(path.with_name(path.name + suffix))
    old.rename(path)
    log.warning("renamed the gate store %s to %s", old, path)
    return old


def open_store(settings: GateSettings) -> GateCache:
    """Open the gate's SQLite file (renaming a legacy one first); CacheError if it cannot be."""
    path = settings.cache_path()
    try:
        migrate_store_name(path)
    except OSError as exc:
        raise CacheError(f"cannot rename the old gate store to {path}: {exc}") from exc
    retention = Retention(
        acked_days=settings.cache.journal_acked_days,
        max_unacked=settings.cache.journal_max_unacked,
    )
    return GateCache(path, retention)


@dataclass
class Gate:
    """One assembled gate; `run` serves it until its stop event is set."""

    settings: GateSettings
    cache: GateCache
    agent: GateAgent
    bridge: MqttBridge | None
    owns_store: bool = True

    @property
    def stop(self) -> threading.Event:
        return self.agent.stop

    def run(self) -> None:
        if self.bridge is not None:
            self.bridge.start()
        try:
            self.agent.run()
        finally:
            self.close()

    def close(self) -> None:
        """Close the uplink and the store (after `run`, or for a gate that never ran)."""
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        self.agent.close_devices()
        self.agent.snapshots.close()
        if self.owns_store:
            self.cache.close()


def assemble_gate(
    settings: GateSettings,
    devices: DeviceFactories | None = None,
    *,
    uplink: bool = True,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
    store: GateCache | None = None,
) -> Gate:
    """Build a gate from its settings; devices default to the configured ones, the store to
    the configured file (a store passed in stays the caller's to close)."""
    cache = open_store(settings) if store is None else store
    link = LinkState()
    holder = PolicyHolder(settings.context())
    # Cores measured for the verify pool at start, not beside the first resident's cold code.
    holder.current().verify_pool.measure_soon()
    journal = GateJournal(cache, holder, link, clock)
    policy = PolicyKeeper(settings, cache, holder, journal)
    agent = GateAgent(
        settings,
        cache,
        DeviceFactories.from_settings(settings) if devices is None else devices,
        policy,
        journal,
        stop,
    )
    bridge = None
    if uplink and settings.mqtt.endpoints():
        hints = PassHints(cache, holder.current, clock)
        bridge = MqttBridge(
            settings.mqtt, cache, journal, agent, link,
            snapshot_path=agent.snapshots.path, hints=hints,
        )  # fmt: skip
    return Gate(settings, cache, agent, bridge, owns_store=store is None)
