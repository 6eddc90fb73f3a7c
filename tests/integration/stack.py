"""A gate and a central as real processes (or in-process parts) on a private broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from nacl.signing import SigningKey
from sqlalchemy import create_engine, select, text

from central.store.tables import events
from edge.cache import GateCache
from protocol.epass import key_id_of
from protocol.messages import EventType
from protocol.settings_file import render_toml
from tests.integration.services import free_port

MENJIN = str(Path(sys.executable).parent / "menjin")


def central_config(workdir: Path, db_url: str, broker_url: str, **ingest: object) -> Path:
    path = workdir / f"central-{free_port()}.toml"
    ingest_cfg: dict[str, object] = {"gap_replay_after_s": 1.0, "offline_grace_s": 5.0} | ingest
    path.write_text(
        render_toml(
            {
                "database": {"url": db_url},
                "mqtt": {"url": broker_url},
                "keys": {"signing": str(workdir / "keys")},
                "http": {"host": "127.0.0.1", "port": free_port()},
                "ingest": ingest_cfg,
                "auth": {"secret": "test-secret-" + os.urandom(8).hex()},
            },
            {},
        )
    )
    return path


def gate_config(
    workdir: Path, site: str, gate: str, broker_url: str, key: SigningKey, **mqtt: object
) -> Path:
    path = workdir / f"{site}-{gate}.toml"
    mqtt_cfg: dict[str, object] = {
        "url": broker_url,
        "resend_after_s": 2.0,
        "status_interval_s": 2.0,
    } | mqtt
    path.write_text(
        render_toml(
            {
                "gate": {"site": site, "gate": gate},
                "cache": {"path": f"{site}-{gate}.db"},
                "mqtt": mqtt_cfg,
            },
            {
                "keys.trusted": [
                    {
                        "key_id": key_id_of(key.verify_key).hex(),
                        "public_key": bytes(key.verify_key).hex(),
                    }
                ]
            },
        )
    )
    return path


class Proc:
    """A menjin subprocess that can be SIGKILLed and started again."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = args
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([MENJIN, *self.args], stdout=out, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def central_proc(config: Path) -> Proc:
    return Proc(["central", "serve", "--config", str(config), "--log-level", "WARNING"],
                config.with_suffix(".log"))  # fmt: skip


def gate_proc(config: Path) -> Proc:
    return Proc(["gate", "run", "--config", str(config), "--log-level", "WARNING"],
                config.with_suffix(".log"))  # fmt: skip


def wait_http(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if json.load(r)["status"] == "ok":
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"central on port {port} did not come up")


def stored(db_url: str, site: str, gate: str) -> list[tuple[int, int, str, str | None]]:
    """(epoch, seq, type, pass_id) of every event central stored for a gate, in order."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(events.c.epoch, events.c.seq, events.c.type, events.c.pass_id)
                .where(events.c.site == site, events.c.gate == gate)
                .order_by(events.c.epoch, events.c.seq)
            ).all()
    finally:
        engine.dispose()
    return [(int(r[0]), int(r[1]), str(r[2]), r[3]) for r in rows]


def duplicates(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM (SELECT site, gate, epoch, seq FROM events"
                        " GROUP BY site, gate, epoch, seq HAVING count(*) > 1) d"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def journalled(cache_path: Path) -> list[tuple[int, int, str, str | None]]:
    cache = GateCache(cache_path)
    try:
        rows = cache.db.execute(
            "SELECT epoch, seq, type, pass_id FROM journal ORDER BY epoch, seq"
        ).fetchall()
    finally:
        cache.close()
    return [(int(r[0]), int(r[1]), str(r[2]), r[3]) for r in rows]


def write_decisions(cache_path: Path, count: int, tag: str = "") -> None:
    """Journal `count` decisions as the agent would (another writer on the same SQLite file)."""
    from datetime import UTC, datetime

    cache = GateCache(cache_path)
    try:
        for i in range(count):
            cache.journal_append(
                EventType.DECISION,
                datetime.now(UTC),
                granted=True,
                reason="ok",
                pass_id=f"{i:016x}",
                details={"tag": tag},
            )
    finally:
        cache.close()
