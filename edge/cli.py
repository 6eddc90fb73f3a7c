"""`menjin gate ...`: write a gate config, decide a presentation, revoke locally, run the agent."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from edge.cache import GateCache
from edge.cli_base import ConfigOpt, assemble, fail, load_config, open_cache
from edge.cli_fleet import gate_lockdown, gate_release
from edge.cli_sounds import gate_sounds
from edge.config import GateSettings, load_gate_settings
from edge.decide import AntiPassback, Decision, Direction, TemperaturePolicy
from edge.gate import DeviceFactories
from protocol.check_catalog import Lang
from protocol.check_report import Param
from protocol.keyfiles import KeyFileError, load_public_key
from protocol.messages import EventType
from protocol.settings_file import render_toml
from protocol.timeparse import parse_when

gate_app = typer.Typer(help="Configure and run a gate; decide offline.", no_args_is_help=True)
gate_app.command("sounds")(gate_sounds)
gate_app.command("lockdown")(gate_lockdown)
gate_app.command("release")(gate_release)


class GivenReading:
    """A thermometer that reads what the command line says (`gate present --temp`)."""

    def __init__(self, celsius: float) -> None:
        self.celsius = celsius

    def read_celsius(self, timeout: float) -> float | None:
        return self.celsius

    def close(self) -> None:
        """Nothing to close."""


@gate_app.command("init")
def gate_init(
    site: Annotated[str, typer.Option(help="Compound (site) id.")],
    gate: Annotated[str, typer.Option(help="This gate's id.")],
    keys: Annotated[list[Path], typer.Option(help="Key directory to trust; repeat for rotation.")],
    out: Annotated[Path, typer.Option(help="Config file to write.")],
    direction: Annotated[Direction, typer.Option(help="Passage direction.")] = Direction.BOTH,
    timezone: Annotated[str, typer.Option(help="Gate time zone.")] = "Asia/Shanghai",
    temperature: Annotated[TemperaturePolicy, typer.Option(help="Temperature policy.")] = (
        TemperaturePolicy.OFF
    ),
    fever_threshold: Annotated[float, typer.Option(help="Fever threshold, °C.")] = 37.3,
    anti_passback: Annotated[AntiPassback, typer.Option(help="Anti-passback mode.")] = (
        AntiPassback.OFF
    ),
    policy_keys: Annotated[
        list[Path] | None,
        typer.Option(help="Central's policy key directory to pin (signed policy); repeatable."),
    ] = None,
) -> None:
    """Write a gate config trusting the public keys of each --keys DIR."""
    try:
        trusted = [load_public_key(d) for d in keys]
        pinned = [load_public_key(d) for d in policy_keys or []]
        ZoneInfo(timezone)
    except KeyFileError as exc:
        raise fail(str(exc)) from exc
    except (ValueError, KeyError) as exc:
        raise fail(f"unknown time zone {timezone!r}") from exc
    text = render_toml(
        {
            "gate": {
                "site": site,
                "gate": gate,
                "direction": direction.value,
                "timezone": timezone,
                "temperature": temperature.value,
                "fever_threshold": fever_threshold,
                "anti_passback": anti_passback.value,
            },
            "cache": {"path": f"{gate}-journal.db"},
        },
        {
            "keys.trusted": [{"key_id": k.key_id, "public_key": k.public_key} for k in trusted],
            "keys.policy": [{"key_id": k.key_id, "public_key": k.public_key} for k in pinned],
        },
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    load_gate_settings(out)  # what we write must load
    typer.echo(str(out))


def present_once(
    settings: GateSettings,
    cache: GateCache,
    text: str,
    now: datetime,
    temp: float | None,
    *,
    dry_run: bool,
) -> tuple[Decision, int | None]:
    """Decide one presentation on the running agent's own path, on this gate's store and live
    policy: the temperature re-test, the `sensor_fault` entry and the journalling are the same.
    """
    reading = None if temp is None else GivenReading(temp)
    devices = DeviceFactories(thermometer=None if reading is None else lambda: reading)
    gate = assemble(settings, devices, uplink=False, clock=now.timestamp, store=cache)
    try:
        gate.agent.start_devices(wait_s=1.0)
        return gate.agent.present(text, record=not dry_run)
    finally:
        gate.close()


@gate_app.command("present")
def gate_present(
    pass_text: Annotated[str, typer.Argument(help="The pass text as read from the QR code.")],
    config: ConfigOpt,
    at: Annotated[
        str | None, typer.Option(help="Presentation time, ISO 8601; default now.")
    ] = None,
    temp: Annotated[float | None, typer.Option(help="Body temperature reading, °C.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Decide without journalling.")] = False,
) -> None:
    """Decide exactly as the gate would; print one JSON object. Exit 0 granted, 1 denied."""
    settings = load_config(config)
    try:
        now = parse_when(at, ZoneInfo(settings.gate.timezone)) if at else datetime.now(UTC)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    cache = open_cache(settings)
    try:
        decision, seq = present_once(settings, cache, pass_text, now, temp, dry_run=dry_run)
    finally:
        cache.close()
    out = decision.facts() | {"seq": seq, "gate": settings.gate.gate, "site": settings.gate.site}
    typer.echo(json.dumps(out, ensure_ascii=False))
    raise typer.Exit(0 if decision.granted else 1)


@gate_app.command("revoke")
def gate_revoke(
    pass_id: Annotated[str, typer.Argument(help="Pass id (16 hex digits).")],
    config: ConfigOpt,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
) -> None:
    """Revoke a pass at this gate only (a guard with no network)."""
    pid = pass_id.strip().lower()
    if len(pid) != 16 or any(c not in "0123456789abcdef" for c in pid):
        raise fail(f"pass id {pass_id!r} must be 16 hex digits")
    settings = load_config(config)
    cache = open_cache(settings)
    try:
        cache.revoke(pid, reason, source="local")
        cache.journal_append(
            EventType.REVOCATION,
            datetime.now(UTC).astimezone(ZoneInfo(settings.gate.timezone)),
            pass_id=pid,
            reason="local",
            details={"note": reason} if reason else {},
        )
    finally:
        cache.close()
    typer.echo(json.dumps({"revoked": pid, "reason": reason}))


@gate_app.command("run")
def gate_run(
    config: ConfigOpt,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
) -> None:
    """Run the gate agent on its devices until SIGTERM or Ctrl-C."""
    import logging
    import signal

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    gate = assemble(load_config(config))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: gate.stop.set())
    gate.run()


@gate_app.command("check")
def gate_check(
    config: ConfigOpt,
    lang: Annotated[Lang, typer.Option(help="Language of the table.")] = Lang.ZH_CN,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document for scripts.")] = False,
    interactive: Annotated[
        bool, typer.Option(help="Ask for a pass to be shown and decide it.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="With --interactive: do not journal.")] = False,
    pulse: Annotated[bool, typer.Option(help="Pulse the relay (it opens the door).")] = False,
    central_wait: Annotated[
        float, typer.Option(help="Seconds to wait for central's heartbeat (clock skew).")
    ] = 12.0,
    events_per_day: Annotated[
        int, typer.Option(help="Disk estimate: presentations and events a day.")
    ] = 3000,
    days: Annotated[int, typer.Option(help="Disk estimate: days offline to hold.")] = 30,
    scan_wait: Annotated[
        float, typer.Option(help="With --interactive: seconds to wait for a shown pass.")
    ] = 30.0,
) -> None:
    """Check config, store, devices and network once; exit 0 ready, 1 something to fix."""
    from edge.check import GateCheckOptions, run_gate_check
    from protocol.check_catalog import CATALOGS
    from protocol.check_report import ready, render_json, render_table

    def say(key: str, params: Mapping[str, Param]) -> None:
        typer.echo(CATALOGS[lang][key].format(**params), err=True)

    opts = GateCheckOptions(
        interactive=interactive,
        pulse=pulse,
        central_wait_s=central_wait,
        scan_wait_s=scan_wait,
        events_per_day=events_per_day,
        days=days,
        present=lambda s, c, text, temp: present_once(s, c, text, datetime.now(UTC), temp,
                                                      dry_run=dry_run),
        say=say,
    )  # fmt: skip
    settings, lines = run_gate_check(config, opts)
    if as_json:
        typer.echo(render_json(lines, lang))
    else:
        site, gate = (settings.gate.site, settings.gate.gate) if settings else ("?", "?")
        title = CATALOGS[lang]["title.gate"].format(site=site, gate=gate, path=config)
        typer.echo(render_table(title, lines, lang), nl=False)
    raise typer.Exit(0 if ready(lines) else 1)
