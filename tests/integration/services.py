"""Real services for tests: a private Mosquitto per session (killable), PostgreSQL schemas."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import skip_or_fail

SHIPPED_CONF = Path(__file__).resolve().parents[2] / "config" / "mosquitto.conf"


def shipped(*names: str) -> str:
    """These directives as config/mosquitto.conf sets them, so tests run what we ship."""
    lines = [
        line
        for line in SHIPPED_CONF.read_text().splitlines()
        if line.split(" ", 1)[0] in names and not line.startswith("#")
    ]
    assert len(lines) == len(names), f"config/mosquitto.conf lacks one of {names}"
    return "\n".join(lines) + "\n"


def secured_conf(passwd: Path, acl: Path) -> str:
    """A broker config with our users and ACL, client ids bound to user names, size limit."""
    return f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n" + shipped(
        "use_username_as_clientid", "message_size_limit"
    )


PG_URL = os.environ.get("MENJIN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A private broker on a free port that a test can SIGKILL and start again."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.binary = shutil.which("mosquitto")
        if self.binary is None:
            skip_or_fail("the mosquitto binary is not on PATH")
        self.port = port or free_port()
        self.workdir = workdir
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        self.log = workdir / f"mosquitto-{self.port}.log"
        # As root, mosquitto drops to its own user, which cannot read pytest's private tmp dirs.
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            run_as + f"listener {self.port} 127.0.0.1\n"
            "persistence false\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "set_tcp_nodelay true\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\n"
            + shipped("message_size_limit")
            + (extra_conf or "allow_anonymous true\n")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.binary is not None
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log.read_text()[-2000:] if self.log.exists() else "(no log)"
                raise RuntimeError(f"mosquitto exited: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def kill(self) -> None:
        """SIGKILL: the broker forgets every session and queued message."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema on the machine's server; yields a URL that uses it."""
    try:
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_URL)
        name = f"t_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
    except Exception as exc:
        skip_or_fail(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
        raise
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()
