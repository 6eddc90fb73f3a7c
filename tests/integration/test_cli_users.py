"""`menjin central user disable|enable|reset-password|end-sessions` and `api-key add|list|revoke`
against the database a running API uses: the API sees each change at once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from central.auth import Role
from protocol.settings_file import render_toml
from tests.integration.api_helpers import PASSWORD, Api
from tests.integration.stack import MENJIN


def cli(config: Path, *args: str, stdin: str | None = None) -> tuple[int, Any, str]:
    done = subprocess.run([MENJIN, "central", *args, "--config", str(config)], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    out = json.loads(done.stdout) if done.returncode == 0 else None
    return done.returncode, out, done.stderr


def test_user_and_api_key_commands(api: Api, tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    config.write_text(render_toml({"database": {"url": api.settings.database_url()},
                                   "auth": {"secret": "s" * 32}}, {}))  # fmt: skip
    c = api.client

    def me(headers: dict[str, str]) -> int:
        return c.get("/api/v1/auth/me", headers=headers).status_code

    assert cli(config, "user", "end-sessions", "guard")[1]["sessions_ended"] == 1
    assert me(api.as_(Role.GUARD)) == 401
    assert cli(config, "user", "disable", "viewer")[1]["sessions_ended"] == 1
    assert me(api.as_(Role.VIEWER)) == 401
    login = {"username": "viewer", "password": PASSWORD}
    assert c.post("/api/v1/auth/token", data=login).status_code == 401
    cli(config, "user", "enable", "viewer")
    assert c.post("/api/v1/auth/token", data=login).status_code == 200
    code, out, _ = cli(config, "user", "reset-password", "viewer", "--password-stdin",
                       stdin="another long password\n")  # fmt: skip
    assert code == 0 and "password" not in out
    assert c.post("/api/v1/auth/token", data=login).status_code == 401
    code, out, _ = cli(config, "user", "reset-password", "guard")
    fresh = {"username": "guard", "password": out["password"]}
    assert c.post("/api/v1/auth/token", data=fresh).status_code == 200
    assert cli(config, "user", "disable", "admin")[0] == 2  # the last enabled admin
    assert cli(config, "user", "disable", "nobody")[0] == 2

    code, key, _ = cli(config, "api-key", "add", "prometheus", "--role", "viewer",
                       "--expires", "2099-01-01")  # fmt: skip
    assert code == 0 and key["key"].startswith("mjk_")
    assert me({"X-API-Key": key["key"]}) == 200
    [listed] = cli(config, "api-key", "list")[1]
    assert (listed["name"], listed["active"], "key" in listed) == ("prometheus", True, False)
    assert listed["expires_at"].startswith("2098-12-31T16:00")  # Asia/Shanghai midnight
    cli(config, "api-key", "revoke", str(key["id"]))
    assert me({"X-API-Key": key["key"]}) == 401
    assert cli(config, "api-key", "add", "x", "--role", "viewer", "--expires", "2000-01-01")[0] == 2
    actions = {a["action"] for a in c.get("/api/v1/audit", headers=api.as_(Role.ADMIN)).json()}
    assert {"user.disable", "user.enable", "user.reset_password", "user.end_sessions",
            "api_key.create", "api_key.revoke"} <= actions  # fmt: skip
