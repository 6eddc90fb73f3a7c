"""A real `menjin central serve` process with one user per role, for attacks through HTTP; the
database, login and process helpers the phone and office tests share."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from central import auth
from central.auth import Role
from central.store.db import make_engine, upgrade
from protocol.keyfiles import init_key_dir
from protocol.settings_file import render_toml
from tests.integration.stack import Proc, central_config, central_proc, wait_http

PASSWORD = "live-central-password"


@dataclass
class LiveCentral:
    proc: Proc
    port: int
    db_url: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def token(self, role: Role = Role.ADMIN) -> str:
        return api_token(self.url, role.value, PASSWORD)

    def headers(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role)}"}


def start_central(workdir: Path, broker_url: str, **sections: dict[str, Any]) -> LiveCentral:
    """Start central on a fresh SQLite file; `sections` are merged into its config."""
    if not (workdir / "keys").exists():
        init_key_dir(workdir / "keys")
    db_file = workdir / f"central-{len(list(workdir.glob('central-*.db')))}.db"
    db_url = central_db(db_file, PASSWORD)
    config = central_config(workdir, db_url, broker_url)
    data = tomllib.loads(config.read_text())
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    config.write_text(render_toml(data, {}))
    proc = central_proc(config).start()
    port = int(data["http"]["port"])
    try:
        wait_http(port)
    except AssertionError:
        proc.stop()
        raise AssertionError(proc.tail()) from None
    return LiveCentral(proc, port, db_url)


def central_db(db_file: Path, password: str, roles: Iterable[Role] = tuple(Role)) -> str:
    """A fresh, migrated SQLite central database with a user per role (named after the role,
    all with `password`); returns its URL."""
    db_url = f"sqlite:///{db_file}"
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            for role in roles:
                auth.create_user(conn, role.value, password, role, datetime.now(UTC))
    finally:
        engine.dispose()
    return db_url


def api_token(url: str, username: str, password: str) -> str:
    """A bearer token from POST /api/v1/auth/token, as an API client logs in."""
    r = httpx.post(f"{url}/api/v1/auth/token", data={"username": username, "password": password},
                   timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@contextmanager
def serving(config: Path) -> Iterator[str]:
    """`menjin central serve` on this config for the block; yields its URL."""
    port = int(tomllib.loads(config.read_text())["http"]["port"])
    proc = central_proc(config).start()
    try:
        try:
            wait_http(port)
        except AssertionError:
            raise AssertionError(proc.tail()) from None
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
