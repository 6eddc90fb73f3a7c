"""`menjin central ...`: serve ingest and the API, register gates, broker credentials."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from central.cli_keys import keys_app
from central.config import CentralSettings, ConfigError, load_central_settings
from protocol.check_catalog import Lang

central_app = typer.Typer(help="Run and administer the central aggregator.", no_args_is_help=True)
ConfigOpt = Annotated[Path, typer.Option("--config", help="Central config TOML.")]


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def load(config: Path) -> CentralSettings:
    try:
        return load_central_settings(config)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


@central_app.command("serve")
def serve(
    config: ConfigOpt,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
) -> None:
    """Run ingest and the HTTP API in one process until SIGTERM or Ctrl-C."""
    import logging

    import uvicorn

    from central.app import create_app
    from central.check import preflight

    settings = load(config)
    preflight(settings)  # before logging is set up: a refusal is one line, not a traceback
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.http.host,
        port=settings.http.port,
        log_level=log_level.lower(),
        proxy_headers=False,  # X-Forwarded-For only via [http] trusted_proxies (central/deps.py)
    )


@central_app.command("gate-add")
def gate_add(
    site: Annotated[str, typer.Argument(help="Site id.")],
    gate: Annotated[str, typer.Argument(help="Gate id.")],
    config: ConfigOpt,
    passwd: Annotated[Path | None, typer.Option(help="Mosquitto password file to add to.")] = None,
    acl: Annotated[Path | None, typer.Option(help="Mosquitto ACL file to add to.")] = None,
    rotate: Annotated[bool, typer.Option(help="Replace the gate's existing password.")] = False,
) -> None:
    """Register a gate with central and create its broker credentials; prints them as JSON."""
    from central import broker_users
    from central.store import presence
    from central.store.db import make_engine, upgrade
    from protocol.topics import NEW_ID_RULE, valid_new_id

    if not (valid_new_id(site) and valid_new_id(gate)):
        raise fail(f"site and gate ids may hold {NEW_ID_RULE}")
    settings = load(config)
    engine = make_engine(settings.database_url())
    upgrade(engine)
    username = broker_users.gate_username(site, gate)
    password = broker_users.new_password()
    if passwd is not None and not rotate:
        try:
            broker_users.refuse_taken(passwd, username)
        except broker_users.BrokerUserError as exc:
            raise fail(str(exc)) from exc
    with engine.begin() as conn:
        presence.register_gate(conn, site, gate, datetime.now(UTC), mqtt_username=username)
    if passwd is not None:
        broker_users.add_user(passwd, username, password)
    if acl is not None:
        broker_users.add_acl(acl, broker_users.gate_acl(site, gate))
    typer.echo(json.dumps({"site": site, "gate": gate, "username": username, "password": password}))


@central_app.command("broker-central")
def broker_central(
    username: Annotated[str, typer.Argument(help="Central's broker user name.")],
    passwd: Annotated[Path, typer.Option(help="Mosquitto password file to add to.")],
    acl: Annotated[Path, typer.Option(help="Mosquitto ACL file to add to.")],
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
) -> None:
    """Create central's own broker user (read/write on menjin/v1/#); prints the password."""
    import sys

    from central import broker_users

    try:
        broker_users.check_central_username(username)
    except broker_users.BrokerUserError as exc:
        raise fail(str(exc)) from exc
    password = sys.stdin.readline().strip() if password_stdin else broker_users.new_password()
    if not password:
        raise fail("empty password")
    broker_users.add_user(passwd, username, password)
    broker_users.add_acl(acl, broker_users.central_acl(username))
    typer.echo(json.dumps({"username": username, "password": password}))


@central_app.command("broker-migrate")
def broker_migrate(
    config: ConfigOpt,
    passwd: Annotated[Path, typer.Option(help="Mosquitto password file to migrate.")],
    acl: Annotated[Path, typer.Option(help="Mosquitto ACL file to migrate.")],
    drop_legacy: Annotated[
        bool, typer.Option(help="Also remove the old gate.SITE.GATE users.")
    ] = False,
) -> None:
    """Give registered gates their gate/SITE/GATE broker users, keeping passwords; prints JSON."""
    from dataclasses import asdict

    from central import broker_users
    from central.broker_migrate import migrate
    from central.store import presence
    from central.store.db import make_engine, upgrade

    engine = make_engine(load(config).database_url())
    upgrade(engine)
    with engine.begin() as conn:
        gates = sorted(presence.known_gates(conn))
        report = migrate(passwd, acl, gates, drop_legacy=drop_legacy)
        for site, gate in gates:
            presence.set_mqtt_username(conn, site, gate, broker_users.gate_username(site, gate))
    typer.echo(json.dumps(asdict(report)))
    if report.colliding:
        typer.echo(
            "error: these gates shared an old broker user name; give each new credentials with"
            f" `gate-add --rotate`: {', '.join(report.colliding)}",
            err=True,
        )
        raise typer.Exit(1)


user_app = typer.Typer(help="API users.", no_args_is_help=True)
central_app.add_typer(user_app, name="user")
central_app.add_typer(keys_app, name="keys")


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="admin, guard or viewer.")],
    config: ConfigOpt,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
) -> None:
    """Add an API user. Without --password-stdin a password is generated and printed."""
    import sys

    from central import auth, broker_users
    from central.store.db import make_engine, upgrade

    try:
        chosen = auth.Role(role)
    except ValueError as exc:
        raise fail(f"role must be admin, guard or viewer, not {role!r}") from exc
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    generated = password is None
    password = password or broker_users.new_password()
    settings = load(config)
    engine = make_engine(settings.database_url())
    upgrade(engine)
    try:
        with engine.begin() as conn:
            auth.create_user(conn, username, password, chosen, datetime.now(UTC))
    except (auth.UserExistsError, ValueError) as exc:
        raise fail(str(exc)) from exc
    out: dict[str, str] = {"username": username, "role": chosen.value}
    if generated:
        out["password"] = password
    typer.echo(json.dumps(out))


@central_app.command("check")
def check(
    config: ConfigOpt,
    lang: Annotated[Lang, typer.Option(help="Language of the table.")] = Lang.ZH_CN,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document for scripts.")] = False,
) -> None:
    """Check database, broker login, signing keys, HTTP port, public URL; exit 0 ready, 1 not."""
    from central.check import run_central_check
    from protocol.check_catalog import CATALOGS
    from protocol.check_report import ready, render_json, render_table

    lines = run_central_check(config)
    title = CATALOGS[lang]["title.central"].format(path=config)
    out = render_json(lines, lang) if as_json else render_table(title, lines, lang)
    typer.echo(out, nl=as_json)
    raise typer.Exit(0 if ready(lines) else 1)


from central import cli_users  # noqa: E402 - user/key/person commands, registered on user_app

cli_users.register(central_app, user_app)
