"""A central app in-process (TestClient, SQLite file) with one user per role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central import auth
from central.app import create_app
from central.auth import Role
from central.config import CentralSettings
from protocol.keyfiles import init_key_dir

PASSWORD = "correct horse battery"


@dataclass
class Api:
    client: TestClient
    headers: dict[Role, dict[str, str]]
    settings: CentralSettings

    def as_(self, role: Role) -> dict[str, str]:
        return self.headers[role]


def central_settings(workdir: Path, mqtt_url: str = "mqtt://127.0.0.1:1") -> CentralSettings:
    init_key_dir(workdir / "keys")
    return CentralSettings(
        database={"url": f"sqlite:///{workdir / 'central.db'}"},  # type: ignore[arg-type]
        mqtt={"url": mqtt_url},  # type: ignore[arg-type]
        keys={"signing": str(workdir / "keys")},  # type: ignore[arg-type]
        auth={"secret": "s" * 32},  # type: ignore[arg-type]
        config_dir=workdir,
    )


def make_users(client: TestClient) -> dict[Role, dict[str, str]]:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for role in Role:
            auth.create_user(conn, role.value, PASSWORD, role, datetime.now(UTC))
    headers = {}
    for role in Role:
        r = client.post("/api/v1/auth/token", data={"username": role.value, "password": PASSWORD})
        assert r.status_code == 200, r.text
        headers[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return headers


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = central_settings(tmp_path)
    with TestClient(create_app(settings, run_ingest=False)) as client:
        yield Api(client, make_users(client), settings)
