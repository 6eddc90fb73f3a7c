"""The README's demo command, as a new user runs it: events from all three gates within a minute."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.services import free_port

PASSWORD = "demo-test-password"


def gates_seen(port: int, deadline: float) -> set[str]:
    base = f"http://127.0.0.1:{port}"
    seen: set[str] = set()
    token = None
    while time.monotonic() < deadline and len(seen) < 3:
        time.sleep(1)
        try:
            if token is None:
                r = httpx.post(f"{base}/api/v1/auth/token",
                               data={"username": "viewer", "password": PASSWORD})  # fmt: skip
                if r.status_code != 200:
                    continue
                token = r.json()["access_token"]
            page = httpx.get(f"{base}/api/v1/events", params={"type": "decision", "limit": 500},
                             headers={"Authorization": f"Bearer {token}"}).json()  # fmt: skip
            seen = {e["gate"] for e in page["items"]}
        except httpx.HTTPError:
            continue
    return seen


@pytest.mark.parametrize("embedded", [False, True], ids=["mosquitto", "embedded-broker"])
def test_demo_shows_events_from_all_three_gates_within_a_minute(
    tmp_path: Path, embedded: bool
) -> None:
    port = free_port()
    args = [sys.executable, "-m", "menjin", "demo", "--http-port", str(port),
            "--admin-password", PASSWORD, "--data-dir", str(tmp_path),
            "--duration", "120"]  # fmt: skip
    if embedded:
        args.append("--embedded-broker")
    started = time.monotonic()
    tmp_path.chmod(0o755)  # the demo must close its data directory whatever it was given
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, umask=0
    )
    try:
        seen = gates_seen(port, started + 60)
        assert seen == {"east", "west", "north"}, f"after 60 s only {seen}"
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "stopped; data kept in" in out
    assert f"Console:   http://127.0.0.1:{port}/" in out and f"guard / {PASSWORD}" in out
    assert ("embedded (amqtt, dev only)" in out) is embedded
    assert_demo_data_private(tmp_path)


def assert_demo_data_private(root: Path) -> None:
    """Keys, credentials and databases are the demo user's only, even under umask 000."""
    secrets = [root / "keys" / "signing.key", root / "central.toml", root / "central.db"]
    secrets += [*root.glob("gate-*.toml"), *root.glob("*.db"), *root.glob("snapshots-*/*.jpg")]
    dirs = [root, root / "keys", *root.glob("snapshots-*")]
    modes = {str(p.relative_to(root)): oct(p.stat().st_mode & 0o777) for p in secrets + dirs}
    want = {str(p.relative_to(root)): oct(0o600) for p in secrets}
    want |= {str(p.relative_to(root)): oct(0o700) for p in dirs}
    assert len(list(root.glob("gate-*.toml"))) == 3
    assert modes == want
