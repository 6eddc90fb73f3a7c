"""`menjin central keys list|new|activate|retire|passes`: the key rotation from a shell.

Each change is written to the database and then pushed: every gate whose policy changed gets
its new signed document over a short-lived MQTT connection (a gate offline gets it on reconnect,
when it asks).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from central.config import CentralSettings
from central.keyring import KeyPurpose

keys_app = typer.Typer(help="Pass and policy signing keys: rotation.", no_args_is_help=True)
ConfigOpt = Annotated[Path, typer.Option("--config", help="Central config TOML.")]
KeyIdArg = Annotated[str, typer.Argument(help="Key id (8 hex digits).")]


@contextmanager
def _database(config: Path) -> Iterator[tuple[CentralSettings, Engine]]:
    from central import keyring
    from central.cli import load
    from central.store.db import make_engine, upgrade

    settings = load(config)
    engine = make_engine(settings.database_url())
    upgrade(engine)
    with engine.begin() as conn:
        keyring.bootstrap(conn, settings, datetime.now(UTC))
    try:
        yield settings, engine
    finally:
        engine.dispose()


class _QosPublisher:
    """A bare paho client publishing at the configured QoS (paho's own default is 0)."""

    def __init__(self, client: Any, qos: int) -> None:
        self.client, self.qos = client, qos

    def publish(self, topic: str, payload: str, retain: bool = False) -> object:
        return self.client.publish(topic, payload, qos=self.qos, retain=retain)


def _push(settings: CentralSettings, engine: Engine) -> int:
    """Re-sign the gates whose policy changed and publish them; returns how many."""
    from central import fleet
    from central.mqtt_client import make_client

    client, host, port = make_client(settings.mqtt, "keys-cli")
    client.connect(host, port)
    client.loop_start()
    try:
        link = _QosPublisher(client, settings.mqtt.qos)
        changed = fleet.refresh_gates(engine, link, datetime.now(UTC))
    finally:
        client.disconnect()  # paho sends what is queued before the DISCONNECT
        client.loop_stop()
    return len(changed)


def _show(engine: Engine, key_id: str, gates_updated: int | None = None) -> None:
    from central import keyring

    with engine.connect() as conn:
        row = keyring.get_key(conn, key_id)
    assert row is not None
    out = {"key_id": row.key_id, "purpose": row.purpose, "state": row.state}
    typer.echo(
        json.dumps(out | ({} if gates_updated is None else {"gates_updated": gates_updated}))
    )


@keys_app.command("list")
def keys_list(config: ConfigOpt) -> None:
    """Every key, one JSON object a line."""
    from central import keyring

    with _database(config) as (_, engine), engine.connect() as conn:
        for row in keyring.keys(conn):
            typer.echo(
                json.dumps({"key_id": row.key_id, "purpose": row.purpose, "state": row.state})
            )


@keys_app.command("new")
def keys_new(
    config: ConfigOpt,
    purpose: Annotated[KeyPurpose, typer.Option(help="pass or policy.")] = KeyPurpose.PASS,
) -> None:
    """Make a key in state `next` and tell every gate to trust it."""
    from central import keyring

    with _database(config) as (settings, engine):
        with engine.begin() as conn:
            key_id = keyring.new_key(conn, settings, purpose, datetime.now(UTC))
        _show(engine, key_id, _push(settings, engine))


def _transition(config: Path, key_id: str, activate: bool) -> None:
    from central import keyring
    from central.cli import fail

    with _database(config) as (settings, engine):
        try:
            with engine.begin() as conn:
                change = keyring.activate if activate else keyring.retire
                change(conn, key_id, datetime.now(UTC))
        except (LookupError, keyring.KeyringError) as exc:
            raise fail(str(exc)) from exc
        _show(engine, key_id, _push(settings, engine))


@keys_app.command("activate")
def keys_activate(key_id: KeyIdArg, config: ConfigOpt) -> None:
    """Sign with this key from now on (the active one becomes `previous`)."""
    _transition(config, key_id, activate=True)


@keys_app.command("retire")
def keys_retire(key_id: KeyIdArg, config: ConfigOpt) -> None:
    """Remove this key from every gate's trust."""
    _transition(config, key_id, activate=False)


@keys_app.command("passes")
def keys_passes(key_id: KeyIdArg, config: ConfigOpt) -> None:
    """The active passes this key signed (re-issue them before retiring it), one a line."""
    from central.routes.keys import active_passes_of

    with _database(config) as (_, engine), engine.connect() as conn:
        for row in active_passes_of(conn, key_id, datetime.now(UTC)):
            typer.echo(json.dumps({"pass_id": row.pass_id, "site": row.site, "holder": row.holder}))
