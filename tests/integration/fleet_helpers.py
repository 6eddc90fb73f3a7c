"""A real central (in-process, with its MQTT ingest) and real gates on the private broker.

Gates are provisioned through the API, so their config pins central's policy key exactly as a
production gate's does, and are put together by `edge.assemble.assemble_gate`.
"""

from __future__ import annotations

import threading
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from nacl.signing import SigningKey

from central.app import create_app
from central.auth import Role
from edge.assemble import Gate, assemble_gate
from edge.config import load_gate_settings
from edge.gate import DeviceFactories
from protocol.keyfiles import load_signing_key
from protocol.settings_file import render_toml
from tests.integration.agent_helpers import wait_for
from tests.integration.api_helpers import central_settings, make_users
from tests.integration.services import Mosquitto


@dataclass
class Fleet:
    """One central and the gates of one site (a fresh site id per test: retained topics)."""

    client: TestClient
    headers: dict[Role, dict[str, str]]
    workdir: Path
    broker: Mosquitto
    site: str = field(default_factory=lambda: f"fl-{uuid.uuid4().hex[:8]}")
    running: dict[str, tuple[Gate, threading.Thread]] = field(default_factory=dict)
    gate_ids: dict[str, int] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return self.headers[Role.ADMIN]

    def api(self, method: str, url: str, **kwargs: Any) -> Any:
        r = self.client.request(method, url, headers=self.admin, **kwargs)
        assert r.status_code < 300, (method, url, r.status_code, r.text)
        return r.json()

    def pass_key(self) -> SigningKey:
        """The key central signs passes with now."""
        [active] = [k for k in self.api("GET", "/api/v1/keys") if k["state"] == "active"
                    and k["purpose"] == "pass"]  # fmt: skip
        return self.key(active["key_id"])

    def key(self, key_id: str) -> SigningKey:
        from central import keyring

        with self.client.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
            row = keyring.get_key(conn, key_id)
        assert row is not None and row.key_dir
        return load_signing_key(Path(row.key_dir))

    def provision(self, gate: str, **sections: dict[str, object]) -> Path:
        """Register a gate through the API and write the config it returns (plus sections)."""
        out = self.api("POST", "/api/v1/gates", json={"site": self.site, "gate": gate})
        self.gate_ids[gate] = out["id"]
        config = tomllib.loads(out["config_toml"])
        keys = config.pop("keys")
        config["mqtt"] |= {"status_interval_s": 1.0, "resend_after_s": 2.0}
        path = self.workdir / f"{gate}.toml"
        arrays = {f"keys.{name}": items for name, items in keys.items()}
        path.write_text(render_toml(config | sections, arrays), encoding="utf-8")
        return path

    def start(self, gate: str, devices: DeviceFactories | None = None) -> Gate:
        """Run the provisioned gate (again) in a thread, as `menjin gate run` would; its devices
        are the configured ones unless given."""
        settings = load_gate_settings(self.workdir / f"{gate}.toml")
        assembled = assemble_gate(settings, devices)
        runner = threading.Thread(target=assembled.run, name=f"gate-{gate}", daemon=True)
        runner.start()
        self.running[gate] = (assembled, runner)
        return assembled

    def connected(self, gate: str) -> Gate:
        assembled = self.running[gate][0]
        bridge = assembled.bridge
        wait_for(lambda: bridge is not None and bridge.connected, 15, f"{gate} connected")
        return assembled

    def stop(self, gate: str) -> None:
        assembled, runner = self.running.pop(gate)
        assembled.stop.set()
        runner.join(15)
        assert not runner.is_alive()

    def close(self) -> None:
        for gate in list(self.running):
            self.stop(gate)


@contextmanager
def fleet_central(workdir: Path, broker: Mosquitto) -> Iterator[Fleet]:
    settings = central_settings(workdir, broker.url)
    with TestClient(create_app(settings)) as client:
        ingest = client.app.state.ingest  # type: ignore[attr-defined]
        assert ingest.connected.wait(10)
        fleet = Fleet(client, make_users(client), workdir, broker)
        try:
            yield fleet
        finally:
            fleet.close()
