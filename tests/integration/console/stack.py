"""A real central (subprocess, free port) fed by a real gate agent through a private Mosquitto,
with one user per role, for the console's browser tests."""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import httpx
from sqlalchemy import select

from central import auth
from central.auth import Role
from central.store import presence
from central.store.db import make_engine, upgrade
from central.store.tables import gates
from edge.cache import GateCache
from edge.config import load_gate_settings
from protocol.messages import EventType
from tests.integration.agent_helpers import make_keys
from tests.integration.services import Mosquitto
from tests.integration.stack import (
    Proc,
    central_config,
    central_proc,
    gate_config,
    gate_proc,
    wait_http,
)

PASSWORD = "console-test-password"
SITE = "hutong"
GATE = "east"


@dataclass
class ConsoleStack:
    """Central + one gate agent; tests may stop and start either."""

    workdir: Path
    broker: Mosquitto
    db_url: str = ""
    central: Proc | None = None
    agent: Proc | None = None
    port: int = 0
    cache_path: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def setup(self, fill: Callable[[], None] | None = None) -> Self:
        """Users and the gate in the database (`fill` may add more), then central and agent."""
        self.db_url = self.db_url or f"sqlite:///{self.workdir / 'central.db'}"
        key = make_keys(self.workdir)
        engine = make_engine(self.db_url)
        upgrade(engine)
        with engine.begin() as conn:
            presence.register_gate(conn, SITE, GATE, datetime.now(UTC))
            for role in Role:
                auth.create_user(conn, role.value, PASSWORD, role, datetime.now(UTC))
        engine.dispose()
        if fill is not None:
            fill()
        config = central_config(self.workdir, self.db_url, self.broker.url)
        self.port = int(tomllib.loads(config.read_text())["http"]["port"])
        self.central = central_proc(config)
        gcfg = gate_config(self.workdir, SITE, GATE, self.broker.url, key)
        self.cache_path = load_gate_settings(gcfg).cache_path()
        self.agent = gate_proc(gcfg)
        self.start_central()
        self.start_agent()
        return self

    def start_agent(self) -> None:
        """Start the agent and wait until central has seen it online (its journal then flows)."""
        assert self.agent is not None
        self.agent.start()
        wait_for(lambda: self.gate_online() is True, 20, "the gate agent to come online")

    def gate_online(self) -> bool | None:
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(select(gates.c.online).where(gates.c.gate == GATE)).first()
        finally:
            engine.dispose()
        return None if row is None else bool(row.online)

    def start_central(self) -> None:
        assert self.central is not None
        self.central.start()
        wait_http(self.port)

    def restart_central(self) -> None:
        assert self.central is not None
        self.central.stop()
        self.start_central()

    def close(self) -> None:
        for proc in (self.agent, self.central):
            if proc is not None:
                proc.stop()

    def token(self, username: str) -> str:
        """A bearer token for the API, as automation would log in."""
        form = {"username": username, "password": PASSWORD}
        r = httpx.post(f"{self.url}/api/v1/auth/token", data=form)
        r.raise_for_status()
        return str(r.json()["access_token"])

    def journal(self, count: int = 1, **fields: object) -> None:
        """Journal decisions in the gate's own journal (the agent ships them to central)."""
        cache = GateCache(self.cache_path)
        try:
            for _ in range(count):
                values: dict[str, object] = {
                    "granted": True, "reason": "ok", "pass_id": os.urandom(8).hex(),
                    "details": {"holder_kind": "resident", "display_name": "张*华", "flags": []},
                } | fields  # fmt: skip
                cache.journal_append(EventType.DECISION, datetime.now(UTC), **values)  # type: ignore[arg-type]
        finally:
            cache.close()

    def fever(self) -> None:
        self.journal(granted=False, reason="fever", temperature_c=38.6,
                     details={"holder_kind": "tenant", "display_name": "王*国",
                              "flags": ["fever"]})  # fmt: skip


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
