"""A real central subprocess for the office's API (imports, cards, re-issue), driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine

from central.auth import Role
from central.store.db import make_engine
from protocol.keyfiles import init_key_dir
from tests.integration.live_central import api_token, central_db, serving
from tests.integration.services import Mosquitto
from tests.integration.stack import central_config

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


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[Office]:
    """One central for a test module (starting one costs seconds); tests use their own units."""
    if broker.proc is None or broker.proc.poll() is not None:
        broker.start()
    workdir = tmp_path_factory.mktemp("office")
    init_key_dir(workdir / "keys")
    db_url = central_db(workdir / "central.db", PASSWORD)
    engine = make_engine(db_url)
    try:
        with serving(_config(workdir, db_url, broker)) as url:
            tokens = {r: api_token(url, r.value, PASSWORD) for r in Role}
            headers = {r: {"Authorization": f"Bearer {t}"} for r, t in tokens.items()}
            with httpx.Client(base_url=url, timeout=60) as http:
                yield Office(http, headers, engine, workdir, broker)
    finally:
        engine.dispose()
