"""`menjin gate check`: every part of a gate checked once, each result a CheckLine.

Order: the config (nothing else can run without it), the store, the devices
(edge/check_devices.py), the network (edge/check_network.py). Texts live in
protocol/check_catalog.py; protocol/check_report.py turns the lines into a table or JSON.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import sqlite3
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edge.assemble import legacy_store, open_store
from edge.cache import CacheError, GateCache
from edge.config import GateSettings
from edge.decide import Decision
from protocol.check_report import FAIL, OK, WARN, CheckLine, Param
from protocol.gate_policy import TemperaturePolicy
from protocol.settings_file import ConfigError, load_settings
from protocol.topics import valid_id, valid_new_id

ROW_BYTES = 250  # one journal row on disk, as measured for docs/operations.md
WIDE_SKEW_S = 3600

# Decides one scanned text (with a temperature reading, if any) for the interactive reader
# check, journalling it unless a dry run; the CLI passes the same function `gate present` uses.
Presenter = Callable[[GateSettings, GateCache, str, float | None], tuple[Decision, int | None]]


@dataclass(frozen=True)
class GateCheckOptions:
    """What the technician asked for on the command line."""

    interactive: bool = False
    pulse: bool = False
    central_wait_s: float = 12.0
    scan_wait_s: float = 30.0
    timeout_s: float = 5.0
    events_per_day: int = 3000
    days: int = 30
    present: Presenter | None = None
    say: Callable[[str, Mapping[str, Param]], None] | None = None


def run_gate_check(
    path: Path, opts: GateCheckOptions
) -> tuple[GateSettings | None, list[CheckLine]]:
    """Run every check once; the settings are None when the config did not load."""
    from edge.check_devices import device_checks
    from edge.check_network import network_checks

    try:
        settings = load_settings(GateSettings, path)
    except ConfigError as exc:
        return None, [CheckLine("config.file", FAIL, "config.error", {"error": str(exc)},
                                "config.error")]  # fmt: skip
    lines = [CheckLine("config.file", OK, "config.ok", {"path": str(path)})]
    lines += [ids_line(settings), keys_line(settings), *policy_lines(settings)]
    store, cache = store_checks(settings, opts)
    lines += store
    try:
        lines += device_checks(settings, opts, cache)
        lines += network_checks(settings, opts, None if cache is None else cache.last_sync())
    finally:
        if cache is not None:
            cache.close()
    return settings, lines


def ids_line(settings: GateSettings) -> CheckLine:
    g = settings.gate
    for value in (g.site, g.gate):
        if not valid_id(value):
            return CheckLine("config.ids", FAIL, "ids.bad", {"value": value}, "ids.rule")
    for value in (g.site, g.gate):
        if not valid_new_id(value):
            return CheckLine("config.ids", WARN, "ids.dot", {"value": value}, "ids.dot")
    return CheckLine("config.ids", OK, "ids.ok", {"site": g.site, "gate": g.gate})


def keys_line(settings: GateSettings) -> CheckLine:
    if not settings.keys.trusted:
        return CheckLine("config.keys", FAIL, "keys.none", hint="keys.none")
    try:
        settings.context()
    except (ValueError, OSError) as exc:
        return CheckLine("config.keys", FAIL, "keys.bad", {"error": str(exc)}, "keys.bad")
    ids = ", ".join(k.key_id for k in settings.keys.trusted)
    return CheckLine("config.keys", OK, "keys.ok", {"n": len(settings.keys.trusted), "ids": ids})


def policy_lines(settings: GateSettings) -> list[CheckLine]:
    """Combinations that load fine but make a gate that cannot work as meant."""
    g, problems = settings.gate, []
    no_thermometer = settings.thermometer.kind == "none"
    if settings.reader.kind == "none":
        problems.append((FAIL, "policy.no_reader"))
    if g.temperature is TemperaturePolicy.REQUIRED and no_thermometer:
        problems.append((FAIL, "policy.required_no_thermometer"))
    if g.temperature is TemperaturePolicy.ADVISORY and no_thermometer:
        problems.append((WARN, "policy.advisory_no_thermometer"))
    if g.temperature is TemperaturePolicy.OFF and not no_thermometer:
        problems.append((WARN, "policy.unused_thermometer"))
    if settings.relay.kind == "none":
        problems.append((WARN, "policy.no_relay"))
    if g.clock_skew_s > WIDE_SKEW_S:
        problems.append((WARN, "policy.wide_skew"))
    params: dict[str, Param] = {
        "direction": g.direction.value,
        "temperature": g.temperature.value,
        "skew": g.clock_skew_s,
    }
    if not problems:
        return [CheckLine("config.policy", OK, "policy.ok", params)]
    return [CheckLine("config.policy", status, key, params, key) for status, key in problems]


def user() -> str:
    with contextlib.suppress(OSError, KeyError):
        return getpass.getuser()
    return str(os.getuid())


def store_checks(
    settings: GateSettings, opts: GateCheckOptions
) -> tuple[list[CheckLine], GateCache | None]:
    """The store file, its filesystem and its free space; returns the opened store if any."""
    path = settings.cache_path()
    directory = path.parent
    if not directory.is_dir():
        params = {"dir": str(directory), "user": user()}
        return [CheckLine("store.file", FAIL, "store.no_dir", params, "store.no_dir")], None
    line, cache = store_line(settings, path, interactive=opts.interactive)
    return [line, filesystem_line(directory), disk_line(settings, directory, opts)], cache


def write_probe(directory: Path) -> OSError | None:
    """Write, sync and delete a small file: the only sure test that the agent can write here."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".menjin-check-")
        try:
            os.write(fd, b"menjin")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        return exc
    return None


def store_line(
    settings: GateSettings, path: Path, *, interactive: bool
) -> tuple[CheckLine, GateCache | None]:
    params: dict[str, Param] = {"path": str(path), "dir": str(path.parent), "user": user()}
    problem = write_probe(path.parent)
    if problem is None and path.exists() and not os.access(path, os.W_OK):
        problem = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    if problem is not None:
        params["error"] = problem.strerror or str(problem)
        hint = "fs.readonly" if problem.errno == errno.EROFS else "store.denied"
        return CheckLine("store.file", FAIL, "store.denied", params, hint), None
    if not path.exists() and legacy_store(path) is None and not interactive:
        return CheckLine("store.file", OK, "store.new", params), None
    try:
        cache = open_store(settings)  # renames a legacy *-cache.db first, as `gate run` does
    except (CacheError, sqlite3.Error, OSError) as exc:
        params["error"] = str(exc)
        return CheckLine("store.file", FAIL, "store.unreadable", params, "store.unreadable"), None
    params["backlog"] = cache.backlog()
    return CheckLine("store.file", OK, "store.ok", params), cache


def filesystem_line(directory: Path) -> CheckLine:
    params: dict[str, Param] = {"dir": str(directory)}
    if os.statvfs(directory).f_flag & os.ST_RDONLY:
        return CheckLine("store.fs", FAIL, "fs.readonly", params, "fs.readonly")
    return CheckLine("store.fs", OK, "fs.ok", params)


def disk_line(settings: GateSettings, directory: Path, opts: GateCheckOptions) -> CheckLine:
    """Room for `days` offline at `events_per_day`, plus the snapshot budget."""
    vfs = os.statvfs(directory)
    free_mb = vfs.f_bavail * vfs.f_frsize / 2**20
    rows = min(opts.events_per_day * opts.days, settings.cache.journal_max_unacked)
    need_mb = rows * ROW_BYTES / 2**20 + settings.agent.snapshot_max_mb
    params: dict[str, Param] = {
        "free_mb": round(free_mb),
        "need_mb": round(need_mb),
        "days": opts.days,
        "rate": opts.events_per_day,
        "row": ROW_BYTES,
        "snap_mb": round(settings.agent.snapshot_max_mb),
    }
    if free_mb < need_mb:
        return CheckLine("store.disk", FAIL, "disk.low", params, "disk.low")
    return CheckLine("store.disk", OK, "disk.ok", params)
