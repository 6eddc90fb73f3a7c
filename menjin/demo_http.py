"""A tiny JSON client for the demo (stdlib only), talking to central's API as an admin would."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from protocol.settings_file import StartupError


class ApiError(Exception):
    """The API answered with an error status."""


class DemoApi:
    def __init__(self, base: str) -> None:
        if not base.startswith("http://127.0.0.1:"):
            raise ValueError("the demo client only talks to the demo's own API")
        self.base = base.rstrip("/")
        self.token: str | None = None

    def _send(self, req: urllib.request.Request) -> Any:
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(
                f"{req.get_method()} {req.full_url}: {exc.code} {exc.read()[:300]!r}"
            ) from exc
        return json.loads(body) if body else None

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return self._send(urllib.request.Request(self.base + path + query))

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(self.base + path, data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        return self._send(req)

    def login(self, username: str, password: str) -> None:
        data = urllib.parse.urlencode({"username": username, "password": password}).encode()
        req = urllib.request.Request(self.base + "/api/v1/auth/token", data=data, method="POST")
        self.token = self._send(req)["access_token"]

    def stream(self, path: str, stop: Any) -> Any:
        """Yield (event kind, data) from a Server-Sent Events endpoint until stop is set."""
        req = urllib.request.Request(self.base + path)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=60) as resp:
            kind = "message"
            for raw in resp:
                if stop.is_set():
                    return
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    yield kind, json.loads(line[6:])

    def wait_healthy(self, timeout: float = 60.0, alive: Callable[[], bool] = lambda: True) -> None:
        """Wait for /healthz; give up at once when `alive` says the server process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                raise StartupError(
                    f"central at {self.base} exited during start-up; see central.log"
                )
            try:
                if self.get("/healthz")["status"] == "ok":
                    return
            except (OSError, ApiError):
                time.sleep(0.2)
        raise RuntimeError(f"central at {self.base} did not come up in {timeout:.0f} s")
