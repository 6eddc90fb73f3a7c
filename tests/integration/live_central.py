"""A real `menjin central serve` process with one user per role, for attacks through HTTP."""

from __future__ import annotations

import tomllib
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
        r = httpx.post(f"{self.url}/api/v1/auth/token",
                       data={"username": role.value, "password": PASSWORD})  # fmt: skip
        r.raise_for_status()
        return str(r.json()["access_token"])

    def headers(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role)}"}


def start_central(workdir: Path, broker_url: str, **sections: dict[str, Any]) -> LiveCentral:
    """Start central on a fresh SQLite file; `sections` are merged into its config."""
    if not (workdir / "keys").exists():
        init_key_dir(workdir / "keys")
    db_file = workdir / f"central-{len(list(workdir.glob('central-*.db')))}.db"
    db_url = f"sqlite:///{db_file}"
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        for role in Role:
            auth.create_user(conn, role.value, PASSWORD, role, datetime.now(UTC))
    engine.dispose()
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
