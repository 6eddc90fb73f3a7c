"""A real central (subprocess) and a real gate agent provisioned through central's API, so the
gate pins central's policy key and applies what the console's fleet pages change."""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import httpx

from central import auth
from central.auth import Role
from central.store.db import make_engine, upgrade
from protocol.settings_file import render_toml
from tests.integration.agent_helpers import make_keys
from tests.integration.console.office_helpers import menjin
from tests.integration.console.stack import GATE, PASSWORD, ConsoleStack
from tests.integration.stack import central_config, central_proc, gate_proc, wait_http


class FleetStack(ConsoleStack):
    """Central and one provisioned gate of a fresh site (the broker keeps retained policies)."""

    site: str = ""
    gate_id: int = 0
    gate_toml: Path = Path()

    def setup(self, fill: Callable[[], None] | None = None) -> Self:
        self.site = f"fl{uuid.uuid4().hex[:8]}"
        self.db_url = f"sqlite:///{self.workdir / 'central.db'}"
        make_keys(self.workdir)
        engine = make_engine(self.db_url)
        upgrade(engine)
        with engine.begin() as conn:
            for role in Role:
                auth.create_user(conn, role.value, PASSWORD, role, datetime.now(UTC))
        engine.dispose()
        config = central_config(self.workdir, self.db_url, self.broker.url)
        self.port = int(tomllib.loads(config.read_text())["http"]["port"])
        self.central = central_proc(config)
        self.central.start()
        wait_http(self.port)
        self.gate_toml = self.provision()
        self.agent = gate_proc(self.gate_toml)
        self.start_agent()
        return self

    def provision(self) -> Path:
        """POST /api/v1/gates, its config written as the installer would (quick status)."""
        out = self.api("POST", "/api/v1/gates", json={"site": self.site, "gate": GATE})
        self.gate_id = int(out["id"])
        config = tomllib.loads(out["config_toml"])
        keys = config.pop("keys")
        config["mqtt"] |= {"status_interval_s": 1.0, "resend_after_s": 2.0}
        config["cache"]["path"] = str(self.workdir / "gate-cache.db")
        path = self.workdir / "gate.toml"
        arrays = {f"keys.{name}": items for name, items in keys.items()}
        path.write_text(render_toml(config, arrays), encoding="utf-8")
        return path

    def api(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token(role)}"}
        r = httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json()

    def issue(self, kind: str = "visitor", holder: str = "李访客") -> str:
        """A pass of this site, signed with central's active key; its text."""
        now = datetime.now(UTC)
        body = {"site": self.site, "holder": holder, "kind": kind,
                "valid_from": (now - timedelta(hours=1)).isoformat(),
                "valid_until": (now + timedelta(days=3)).isoformat()}  # fmt: skip
        return str(self.api("POST", "/api/v1/passes", json=body)["text"])

    def present(self, text: str) -> dict[str, Any]:
        """`menjin gate present` on the running gate's own store and live policy."""
        code, out, err = menjin("gate", "present", text, "--config", str(self.gate_toml))
        assert code in (0, 1), err
        found: dict[str, Any] = json.loads(out)
        return found

    def gate(self) -> dict[str, Any]:
        [row] = self.api("GET", "/api/v1/gates", params={"site": self.site})
        return dict(row)

    def applied(self) -> bool:
        """The gate reported the latest version central signed for it."""
        row = self.gate()
        return bool(row["policy_latest"]) and row["policy_version"] == row["policy_latest"]

    def audit_actions(self) -> list[str]:
        found = self.api("GET", "/api/v1/audit", params={"limit": 500})
        items = found["items"] if isinstance(found, dict) else found
        return [str(a["action"]) for a in items]
