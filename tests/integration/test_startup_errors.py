"""Every `menjin` command that cannot start says why in one line on stderr and exits non-zero.

Real collisions only: ports held by a listening socket, a database port nothing listens on, a
Mosquitto with a password file, and config files with a bad field.
"""

from __future__ import annotations

import errno
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from central import broker_users
from tests.integration.services import Mosquitto, free_port, pg_schema
from tests.integration.stack import MENJIN
from tests.integration.test_central_check import write_central


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MENJIN, *args], capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The refusal: exit non-zero, one line on stderr, no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_serve_with_a_closed_database_port(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    proc = run("central", "serve", "--config", str(write_central(tmp_path, database={"url": url})))
    line = one_line_error(proc)
    assert "database: cannot reach" in line and "Connection refused" in line
    assert "[database] url" in line


def test_serve_with_wrong_database_credentials(tmp_path: Path) -> None:
    with pg_schema() as url:
        wrong = url.replace("postgres@", "nosuchrole:secret@", 1)
        config = write_central(tmp_path, database={"url": wrong})
        line = one_line_error(run("central", "serve", "--config", str(config)))
    assert "refused the login" in line and "secret" not in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    config = write_central(tmp_path, database={"url": url})
    proc = run("--debug", "central", "serve", "--config", str(config))
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "StartupError" in proc.stderr


def test_serve_with_its_http_port_taken(tmp_path: Path, held_port: int) -> None:
    config = write_central(tmp_path, http={"port": held_port})
    line = one_line_error(run("central", "serve", "--config", str(config)))
    assert f"127.0.0.1:{held_port} is in use" in line and "[http] port" in line
    assert not (tmp_path / "central.db").exists()  # refused before touching the database


def test_serve_with_refused_broker_credentials(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    broker_users.add_user(passwd, "central", broker_users.new_password())
    mq = Mosquitto(tmp_path, extra_conf=f"allow_anonymous false\npassword_file {passwd}\n")
    mq.start()
    try:
        config = write_central(tmp_path, mqtt={"url": mq.url, "username": "central",
                                               "password": "out-of-date"})  # fmt: skip
        line = one_line_error(run("central", "serve", "--config", str(config)))
    finally:
        mq.stop()
    assert "broker login: the broker refused user central" in line
    assert "menjin central broker-central" in line


@pytest.mark.parametrize(
    ("command", "text", "field"),
    [
        ("gate", '[gate]\nsite = "s1"\ngate = "east"\n[reader]\nkind = "usb"\n', "reader.kind"),
        ("gate", '[gate]\nsite = "s1"\n', "gate.gate: Field required"),
        ("central", '[http]\nport = "eighty"\n[auth]\nsecret = "0123456789abcdef0"\n',
         "http.port"),
    ],
    ids=["gate-literal", "gate-missing", "central-type"],
)  # fmt: skip
def test_config_field_errors_name_the_field(
    tmp_path: Path, command: str, text: str, field: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    args = ("gate", "run") if command == "gate" else ("central", "serve")
    line = one_line_error(run(*args, "--config", str(config)))
    assert field in line and str(config) in line


def test_demo_with_a_taken_port_it_was_told_to_use(tmp_path: Path, held_port: int) -> None:
    proc = run("demo", "--http-port", str(held_port), "--data-dir", str(tmp_path))
    line = one_line_error(proc)
    assert f"port {held_port} on 127.0.0.1 is in use" in line and "--http-port" in line
    assert not (tmp_path / "keys").exists()  # refused before starting anything


def test_demo_picks_a_free_port_when_8080_is_taken(tmp_path: Path) -> None:
    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 8080))
        holder.listen()
    except OSError as exc:
        holder.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        holder = None  # type: ignore[assignment]  # something else holds 8080: just as good
    try:
        proc = subprocess.Popen(
            [MENJIN, "demo", "--data-dir", str(tmp_path), "--admin-password", "pw-for-test",
             "--duration", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
    finally:
        if holder is not None:
            holder.close()
    assert proc.returncode == 0, out[-3000:]
    assert "port 8080 is in use (another demo?); central uses port" in out
    chosen = out.split("central uses port ", 1)[1].split(" ", 1)[0]
    assert f"http://127.0.0.1:{chosen}/docs" in out
    assert "Traceback" not in out


def test_admin_commands_with_the_database_down_say_so_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    config = write_central(tmp_path, database={"url": url})
    line = one_line_error(run("central", "user", "add", "alice", "--role", "guard",
                              "--config", str(config)))  # fmt: skip
    assert "the database is unreachable or refused the login" in line
    assert "Connection refused" in line and "[database] url" in line
