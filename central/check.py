"""`menjin central check`, and the few of its lines that stop `menjin central serve` from starting.

Database reachable and migrated, broker reachable with central's credentials, signing keys
readable and 0600, HTTP port free, the public broker URL resolvable. Rendering is shared with
the gate check (protocol/check_report.py).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlparse

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import make_url, text
from sqlalchemy.exc import SQLAlchemyError

from central.config import CentralSettings, ConfigError, load_central_settings
from central.mqtt_client import make_client
from central.store.db import MIGRATIONS, make_engine, upgrade
from menjin.probes import PortState, broker_lines, port_state
from protocol.check_report import FAIL, OK, SKIP, WARN, CheckLine, Param, one_line
from protocol.epass import key_id_of
from protocol.keyfiles import SIGNING_FILE, KeyFileError, load_public_key, load_signing_key
from protocol.settings_file import StartupError

# What a driver's error message says, lowercased -> our catalog key.
_DB_PROBLEMS = (
    (("password authentication failed", "authentication failed", "role \""), "db.auth"),
    (("database \"",), "db.missing_db"),
    (("unable to open database file",), "db.sqlite"),
    (("connection refused", "could not connect", "timeout", "timed out", "no route",
      "could not translate host name", "name or service not known"), "db.refused"),
)  # fmt: skip
FATAL_AT_START = ("db.reach", "db.migrated", "http.port", "mqtt.auth")


def run_central_check(path: Path, timeout: float = 5.0) -> list[CheckLine]:
    try:
        settings = load_central_settings(path)
    except ConfigError as exc:
        params = {"error": str(exc)}
        return [CheckLine("config.file", FAIL, "config.error", params, "config.error")]
    lines = [CheckLine("config.file", OK, "config.ok", {"path": str(path)})]
    lines += database_lines(settings)
    lines += broker_check(settings, timeout)
    lines += key_lines(settings)
    lines.append(http_line(settings))
    lines.append(public_url_line(settings))
    return lines


def preflight(settings: CentralSettings, timeout: float = 3.0) -> None:
    """Refuse to start, in one sentence, when serve would only crash or run deaf."""
    steps: tuple[Callable[[], list[CheckLine]], ...] = (
        lambda: [http_line(settings)],
        lambda: database_lines(settings, migrate=True),
        lambda: broker_check(settings, timeout),
    )
    for step in steps:
        for line in step():
            if line.check in FATAL_AT_START and line.status is FAIL:
                raise StartupError(one_line(line))


def _where(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def db_problem(where: str, exc: BaseException) -> CheckLine:
    """One line from a driver error (PostgreSQL's are several lines long)."""
    raw = str(getattr(exc, "orig", None) or exc)
    first = next((part.strip() for part in raw.splitlines() if part.strip()), raw)
    params: dict[str, Param] = {"where": where, "error": first}
    lowered = raw.lower()
    for needles, key in _DB_PROBLEMS:
        if any(n in lowered for n in needles):
            return CheckLine("db.reach", FAIL, key, params, key)
    return CheckLine("db.reach", FAIL, "db.error", params, "db.error")


def database_lines(settings: CentralSettings, *, migrate: bool = False) -> list[CheckLine]:
    url = settings.database_url()
    where = _where(url)
    sqlite_file = make_url(url).database if url.startswith("sqlite") else None
    if sqlite_file and not migrate and not Path(sqlite_file).exists():
        return _new_sqlite(where, Path(sqlite_file))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_revision()
        if migrate:
            upgrade(engine)  # serve would do it in its lifespan, where a failure is a traceback
            return [CheckLine("db.reach", OK, "db.ok", {"where": where})]
    except CommandError as exc:
        return [CheckLine("db.migrated", FAIL, "migrated.ahead", {"current": str(exc)},
                          "migrated.ahead")]  # fmt: skip
    except (SQLAlchemyError, OSError) as exc:
        return [db_problem(where, exc), CheckLine("db.migrated", SKIP, "blocked")]
    finally:
        engine.dispose()
    return [CheckLine("db.reach", OK, "db.ok", {"where": where}), migration_line(current)]


def _new_sqlite(where: str, path: Path) -> list[CheckLine]:
    params: dict[str, Param] = {"where": where, "dir": str(path.parent)}
    if not os.access(path.parent, os.W_OK):
        params["error"] = "directory missing or not writable"
        return [CheckLine("db.reach", FAIL, "db.sqlite", params, "db.sqlite"),
                CheckLine("db.migrated", SKIP, "blocked")]  # fmt: skip
    return [CheckLine("db.reach", OK, "db.sqlite_new", params),
            CheckLine("db.migrated", OK, "migrated.new")]  # fmt: skip


def migration_line(current: str | None) -> CheckLine:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head() or "-"
    params: dict[str, Param] = {"current": current or "-", "head": head}
    if current is None:
        return CheckLine("db.migrated", WARN, "migrated.empty", params, "migrated.behind")
    if current == head:
        return CheckLine("db.migrated", OK, "migrated.ok", params)
    try:
        script.get_revision(current)
    except CommandError:
        return CheckLine("db.migrated", FAIL, "migrated.ahead", params, "migrated.ahead")
    return CheckLine("db.migrated", WARN, "migrated.behind", params, "migrated.behind")


def broker_check(settings: CentralSettings, timeout: float) -> list[CheckLine]:
    cfg = settings.mqtt
    # A generated client id, never the configured one: that would drop a running replica.
    made = make_client(cfg.model_copy(update={"client_id": ""}), "check")
    lines, session = broker_lines(
        made, cfg.url, cfg.ca_file, cfg.username, timeout, "auth.refused_central"
    )
    if session is not None:
        session.close()
    return lines


def key_lines(settings: CentralSettings) -> list[CheckLine]:
    directory = settings.signing_dir()
    path = directory / SIGNING_FILE
    params: dict[str, Param] = {"path": str(path), "dir": str(directory)}
    try:
        key = load_signing_key(directory)
    except KeyFileError as exc:
        params["error"] = str(exc)
        lines = [
            CheckLine("keys.signing", FAIL, "signing.unreadable", params, "signing.unreadable")
        ]
    else:
        mode = stat.S_IMODE(path.stat().st_mode)
        params |= {"mode": f"{mode:04o}", "key_id": key_id_of(key.verify_key).hex()}
        lines = [
            CheckLine("keys.signing", FAIL, "signing.mode", params, "signing.mode")
            if mode & 0o077
            else CheckLine("keys.signing", OK, "signing.ok", params)
        ]
    return lines + trusted_lines(settings, settings.keys.trusted)


def trusted_lines(settings: CentralSettings, dirs: Sequence[str]) -> list[CheckLine]:
    for name in dirs:
        try:
            load_public_key(settings.resolve(name))
        except KeyFileError as exc:
            params = {"dir": name, "error": str(exc)}
            return [CheckLine("keys.trusted", FAIL, "trusted.bad", params, "trusted.bad")]
    if not dirs:
        return []
    return [CheckLine("keys.trusted", OK, "trusted.ok", {"n": len(dirs)})]


def http_line(settings: CentralSettings) -> CheckLine:
    host, port = settings.http.host, settings.http.port
    state, error = port_state(host, port)
    params: dict[str, Param] = {"host": host, "port": port, "error": error}
    if state is PortState.FREE:
        return CheckLine("http.port", OK, "http.free", params)
    key = f"http.{state.value}"
    return CheckLine("http.port", FAIL, key, params, key)


def public_url_line(settings: CentralSettings) -> CheckLine:
    """The broker URL central hands to gates must resolve, and not to this machine only."""
    url = settings.mqtt.public_url or settings.mqtt.url
    parsed = urlparse(url)
    params: dict[str, Param] = {"url": url, "host": parsed.hostname or "-"}
    if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
        return CheckLine("mqtt.public", FAIL, "public.bad", params, "public.bad")
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 1883, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        params["error"] = str(exc)
        return CheckLine("mqtt.public", FAIL, "public.dns", params, "public.dns")
    addresses = sorted({str(info[4][0]) for info in infos})
    params["addresses"] = ", ".join(addresses)
    if all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        return CheckLine("mqtt.public", WARN, "public.loopback", params, "public.loopback")
    return CheckLine("mqtt.public", OK, "public.ok", params)
