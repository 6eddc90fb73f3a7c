"""A real central subprocess for the office's API (imports, cards, re-issue), driven over HTTP."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine

from central import auth
from central.auth import Role
from central.store.db import make_engine, upgrade
from protocol.keyfiles import init_key_dir
from tests.integration.services import Mosquitto
from tests.integration.stack import central_config, central_proc, wait_http

PASSWORD = "office-test-password"
SITE = "hutong-12"
OFFICE = "东四街道八条社区居委会"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class Office:
    """An HTTP client on a running central, a token per role, and its database."""

    http: httpx.Client
    headers: dict[Role, dict[str, str]]
    engine: Engine
    workdir: Path
    broker: Mosquitto

    def as_(self, role: Role) -> dict[str, str]:
        return self.headers[role]

    def issue(self, **changes: Any) -> dict[str, Any]:
        admin = self.as_(Role.ADMIN)
        r = self.http.post("/api/v1/passes", json=pass_body(**changes), headers=admin)
        assert r.status_code == 201, r.text
        issued: dict[str, Any] = r.json()
        return issued


def pass_body(**changes: Any) -> dict[str, Any]:
    now = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
    base = {
        "site": SITE,
        "holder": "张三华",
        "kind": "resident",
        "valid_from": (now - timedelta(hours=1)).isoformat(),
        "valid_until": (now + timedelta(days=365)).isoformat(),
        "gates": ["east"],
        "unit": "3号楼2单元501",
        "phone": "13812345678",
    }
    return {**base, **changes}


def _config(workdir: Path, db_url: str, broker: Mosquitto) -> Path:
    path = central_config(workdir, db_url, broker.url)
    with path.open("a") as out:  # the site's cards name their issuing office
        out.write(f'\n[sites.{SITE}]\noffice = "{OFFICE}"\ntimezone = "Asia/Shanghai"\n')
    return path


def _login(http: httpx.Client, role: Role) -> dict[str, str]:
    r = http.post("/api/v1/auth/token", data={"username": role.value, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[Office]:
    """One central for a test module (starting one costs seconds); tests use their own units."""
    if broker.proc is None or broker.proc.poll() is not None:
        broker.start()
    workdir = tmp_path_factory.mktemp("office")
    init_key_dir(workdir / "keys")
    db_url = f"sqlite:///{workdir / 'central.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        for role in Role:
            auth.create_user(conn, role.value, PASSWORD, role, datetime.now(UTC))
    config = _config(workdir, db_url, broker)
    port = int(tomllib.loads(config.read_text())["http"]["port"])
    central = central_proc(config).start()
    try:
        wait_http(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield Office(http, {r: _login(http, r) for r in Role}, engine, workdir, broker)
    finally:
        central.stop()
        engine.dispose()
