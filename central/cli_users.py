"""`menjin central user|api-key|person ...`: accounts, API keys and forgetting a person.

Each command works on the database directly (no running central needed) and leaves an audit
line with actor `cli:<login>`, as the API's admin routes do.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import Connection

from central import auth
from central.cli import ConfigOpt, fail, load
from central.store.tables import audit

NameArg = Annotated[str, typer.Argument(help="Login name.")]


@contextmanager
def _db(config: Any) -> Iterator[Connection]:
    from central.store.db import make_engine, upgrade

    engine = make_engine(load(config).database_url())
    try:
        upgrade(engine)
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _audit(conn: Connection, action: str, target: str | None, **details: Any) -> None:
    conn.execute(
        audit.insert().values(
            at=datetime.now(UTC), actor=f"cli:{getpass.getuser()}"[:80], action=action,
            target=target, remote="cli", details=details,
        )
    )  # fmt: skip


def _echo(out: dict[str, Any] | list[dict[str, Any]]) -> None:
    typer.echo(json.dumps(out, ensure_ascii=False, default=str))


def _user_command(action: str, change: Callable[[Connection, str], int]) -> Callable[..., None]:
    def command(username: NameArg, config: ConfigOpt) -> None:
        with _db(config) as conn:
            try:
                ended = change(conn, username)
            except (auth.NoSuchUserError, auth.LastAdminError) as exc:
                raise fail(str(exc)) from exc
            _audit(conn, action, username, sessions_ended=ended)
        _echo({"username": username, "sessions_ended": ended})

    return command


def user_list(config: ConfigOpt) -> None:
    """List users (name, role, disabled)."""
    with _db(config) as conn:
        rows = auth.list_users(conn)
    _echo([{"username": r.username, "role": r.role, "disabled": r.disabled} for r in rows])


def user_reset_password(
    username: NameArg,
    config: ConfigOpt,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
) -> None:
    """Set a new password and end every session; without --password-stdin one is generated
    and printed."""
    from central import broker_users

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    generated = password is None
    password = password or broker_users.new_password()
    with _db(config) as conn:
        try:
            ended = auth.end_sessions(conn, username)
            auth.set_password(conn, username, password)
        except (auth.NoSuchUserError, ValueError) as exc:
            raise fail(str(exc)) from exc
        _audit(conn, "user.reset_password", username, sessions_ended=ended)
    out: dict[str, Any] = {"username": username, "sessions_ended": ended}
    if generated:
        out["password"] = password
    _echo(out)


key_app = typer.Typer(help="API keys for automation.", no_args_is_help=True)


@key_app.command("add")
def key_add(
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    role: Annotated[str, typer.Option(help="admin, guard or viewer.")],
    config: ConfigOpt,
    expires: Annotated[
        str | None, typer.Option(help="Expiry, e.g. 2027-01-01 or 2027-01-01T08:00+08:00.")
    ] = None,
) -> None:
    """Create an API key; prints it once."""
    from protocol.timeparse import parse_when

    try:
        chosen = auth.Role(role)
        until = parse_when(expires, ZoneInfo("Asia/Shanghai")).astimezone(UTC) if expires else None
    except ValueError as exc:
        raise fail(str(exc)) from exc
    with _db(config) as conn:
        try:
            key_id, key = auth.create_api_key(
                conn, name, chosen, f"cli:{getpass.getuser()}", datetime.now(UTC), until
            )
        except ValueError as exc:
            raise fail(str(exc)) from exc
        _audit(conn, "api_key.create", name, role=chosen.value,
               expires_at=until.isoformat() if until else None)  # fmt: skip
    _echo({"id": key_id, "name": name, "role": chosen.value, "expires_at": until, "key": key})


@key_app.command("list")
def key_list(config: ConfigOpt) -> None:
    """List API keys (never the keys themselves)."""
    from central.routes.auth import api_key_public

    now = datetime.now(UTC)
    with _db(config) as conn:
        rows = auth.list_api_keys(conn)
    _echo([api_key_public(r, now).model_dump(mode="json") for r in rows])


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id.")], config: ConfigOpt
) -> None:
    """Revoke an API key at once."""
    with _db(config) as conn:
        if not auth.revoke_api_key(conn, key_id):
            raise fail(f"no API key {key_id}")
        _audit(conn, "api_key.revoke", str(key_id))
    _echo({"id": key_id, "revoked": True})


person_app = typer.Typer(help="People passes were issued to.", no_args_is_help=True)


@person_app.command("forget")
def person_forget(
    person_id: Annotated[int, typer.Argument(help="person_id, as GET /api/v1/passes shows it.")],
    config: ConfigOpt,
) -> None:
    """Delete a person's name, unit, phone and passes (revoking them); events stay, without
    the name. Gates learn of the revocations at their next sync."""
    from central.routes.people import forget

    with _db(config) as conn:
        done = forget(conn, person_id, f"cli:{getpass.getuser()}", datetime.now(UTC))
        if done is None:
            raise fail(f"no person {person_id}")
        result, _versions = done
        _audit(conn, "person.forget", str(person_id), passes=len(result.passes_revoked),
               events_scrubbed=result.events_scrubbed)  # fmt: skip
    _echo(result.model_dump())


def register(central_app: typer.Typer, user_app: typer.Typer) -> None:
    """Hook the commands into `menjin central` and its `user` group."""
    user_app.command("list")(user_list)
    user_app.command("disable", help="Disable a user and end their sessions.")(
        _user_command("user.disable", lambda c, u: auth.set_disabled(c, u, True))
    )
    user_app.command("enable", help="Enable a disabled user.")(
        _user_command("user.enable", lambda c, u: auth.set_disabled(c, u, False))
    )
    user_app.command("end-sessions", help="End every session of a user now.")(
        _user_command("user.end_sessions", auth.end_sessions)
    )
    user_app.command("reset-password")(user_reset_password)
    central_app.add_typer(key_app, name="api-key")
    central_app.add_typer(person_app, name="person")
