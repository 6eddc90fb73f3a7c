"""The network lines of `menjin gate check`: broker, TLS, credentials, central, clock, last sync."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import ValidationError

from edge.check import GateCheckOptions
from edge.config import GateSettings
from edge.mqtt_settings import make_client
from menjin.probes import BrokerSession, broker_lines
from protocol.check_report import FAIL, OK, SKIP, WARN, CheckLine, Param
from protocol.messages import CentralStatus, GateState
from protocol.topics import central_status_topic

CLOCK_OK_S = 2.0
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


def network_checks(
    settings: GateSettings, opts: GateCheckOptions, last_sync: float | None
) -> list[CheckLine]:
    cfg = settings.mqtt
    if not cfg.endpoints():
        return [CheckLine("mqtt.reach", SKIP, "mqtt.none")]
    g = settings.gate
    # Not the agent's client id: the broker would drop a running agent for this check.
    made = make_client(cfg, f"menjin-check-{g.site}-{g.gate}")
    lines, session = broker_lines(
        made, cfg.endpoints()[0], cfg.ca_file, cfg.username, opts.timeout_s, "auth.refused_gate"
    )
    if session is None:
        lines += [CheckLine(c, SKIP, "blocked") for c in ("central.status", "clock.skew")]
    else:
        try:
            lines += central_lines(session, settings, opts)
        finally:
            session.close()
    lines.append(sync_line(last_sync))
    return lines


def _statuses(session: BrokerSession) -> list[tuple[CentralStatus, bool, float]]:
    out = []
    for _, payload, retained, received in session.messages:
        try:
            out.append((CentralStatus.model_validate_json(payload), retained, received))
        except ValidationError:
            continue
    return out


def central_lines(
    session: BrokerSession, settings: GateSettings, opts: GateCheckOptions
) -> list[CheckLine]:
    """Central's retained status says whether it is up; a live heartbeat gives the clock skew."""
    session.collect(central_status_topic(), opts.central_wait_s)
    seen = _statuses(session)
    params: dict[str, Param] = {"wait": round(opts.central_wait_s)}
    clock_unknown = CheckLine("clock.skew", SKIP, "clock.unknown")
    if not seen:
        return [CheckLine("central.status", FAIL, "central.unseen", params, "central.unseen"),
                clock_unknown]  # fmt: skip
    status, retained, received = seen[-1]
    params["at"] = status.at.isoformat(timespec="seconds") if status.at else "-"
    if status.state is GateState.OFFLINE or status.at is None:
        return [CheckLine("central.status", FAIL, "central.offline", params, "central.offline"),
                clock_unknown]  # fmt: skip
    online = CheckLine("central.status", OK, "central.online", params)
    skew = status.at.timestamp() - received
    return [online, clock_line(skew, retained, settings.gate.clock_skew_s, params)]


def clock_line(skew: float, retained: bool, limit: int, params: dict[str, Param]) -> CheckLine:
    params = params | {"skew": round(skew, 1) + 0.0, "limit": limit}  # + 0.0: never "-0.0"
    if abs(skew) > limit:
        return CheckLine("clock.skew", FAIL, "clock.off", params, f"clock.{ntp_state().value}")
    if retained:
        return CheckLine("clock.skew", WARN, "clock.retained", params, "clock.retained")
    if abs(skew) > CLOCK_OK_S:
        return CheckLine("clock.skew", WARN, "clock.drift", params, f"clock.{ntp_state().value}")
    return CheckLine("clock.skew", OK, "clock.ok", params)


class Ntp(StrEnum):
    SYNCED = "ntp_synced"
    UNSYNCED = "ntp_unsynced"  # a client runs but has not synchronized
    OFF = "ntp_off"  # no NTP client found


def ntp_state() -> Ntp:
    """Best effort: systemd-timesyncd's flag, timedatectl, then chrony or ntpd being present."""
    if TIMESYNCD_FLAG.exists():
        return Ntp.SYNCED
    timedatectl = shutil.which("timedatectl")
    if timedatectl is not None:
        try:
            out = subprocess.run(  # noqa: S603 - a fixed command, no shell
                [timedatectl, "show", "-p", "NTP", "-p", "NTPSynchronized"],
                capture_output=True, text=True, timeout=3, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0:
            facts = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
            if facts.get("NTPSynchronized") == "yes":
                return Ntp.SYNCED
            if facts.get("NTP") == "yes":
                return Ntp.UNSYNCED
    if any(shutil.which(d) for d in ("chronyd", "ntpd")) or Path("/run/chrony").exists():
        return Ntp.UNSYNCED
    return Ntp.OFF


def sync_line(last_sync: float | None) -> CheckLine:
    if last_sync is None:
        return CheckLine("sync.age", WARN, "sync.never", hint="sync.never")
    age_h = max(0.0, time.time() - last_sync) / 3600
    at = datetime.fromtimestamp(last_sync, UTC).isoformat(timespec="seconds")
    return CheckLine("sync.age", OK, "sync.ok", {"age_h": round(age_h, 1), "at": at})
