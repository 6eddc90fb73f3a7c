"""`menjin central check` as an operator runs it: real SQLite and PostgreSQL, a real Mosquitto."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from central import broker_users
from central.store.db import make_engine, upgrade
from protocol.keyfiles import init_key_dir
from protocol.settings_file import render_toml
from tests.integration.services import Mosquitto, free_port, pg_schema
from tests.integration.stack import MENJIN


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, str]]:
    root = tmp_path_factory.mktemp("central-broker")
    passwd, acl = root / "passwd", root / "acl"
    password = broker_users.new_password()
    broker_users.add_user(passwd, "central", password)
    broker_users.add_acl(acl, broker_users.central_acl("central"))
    mq = Mosquitto(root, extra_conf=f"allow_anonymous false\npassword_file {passwd}\n"
                   f"acl_file {acl}\n")  # fmt: skip
    mq.start()
    yield mq, password
    mq.stop()


def write_central(tmp_path: Path, **sections: dict[str, object]) -> Path:
    if not (tmp_path / "keys").exists():
        init_key_dir(tmp_path / "keys")
    base: dict[str, dict[str, object]] = {
        "database": {"url": "sqlite:///central.db"},
        "mqtt": {"url": "mqtt://127.0.0.1:1", "public_url": "mqtts://192.0.2.10:8883"},
        "keys": {"signing": "keys"},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "auth": {"secret": "a-test-secret-of-some-length"},
    }
    for name, section in sections.items():
        base[name] = base.get(name, {}) | section
    path = tmp_path / "central.toml"
    path.write_text(render_toml(base, {}), encoding="utf-8")
    return path


def run_check(config: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    proc = subprocess.run(
        [MENJIN, "central", "check", "--config", str(config), "--json", "--lang", "en"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.stdout, proc.stderr
    report = json.loads(proc.stdout)
    return proc.returncode, {c["check"]: c for c in report["checks"]}


def test_a_ready_central_on_sqlite(tmp_path: Path, secured: tuple[Mosquitto, str]) -> None:
    mq, password = secured
    config = write_central(tmp_path, mqtt={"url": mq.url, "username": "central",
                                           "password": password})  # fmt: skip
    code, lines = run_check(config)
    assert code == 0, lines
    assert {k: v["status"] for k, v in lines.items()} == {
        "config.file": "ok", "db.reach": "ok", "db.migrated": "ok", "mqtt.reach": "ok",
        "mqtt.tls": "warn", "mqtt.auth": "ok", "keys.signing": "ok", "http.port": "ok",
        "mqtt.public": "ok",
    }  # fmt: skip
    assert lines["db.migrated"]["message_key"] == "migrated.new"
    assert not (tmp_path / "central.db").exists()  # the check creates nothing


def test_postgresql_migrated_or_not(tmp_path: Path) -> None:
    with pg_schema() as url:
        config = write_central(tmp_path, database={"url": url})
        code, lines = run_check(config)
        assert lines["db.reach"]["status"] == "ok", lines["db.reach"]
        assert lines["db.migrated"]["message_key"] == "migrated.empty"
        engine = make_engine(url)
        upgrade(engine)
        _, lines = run_check(config)
        assert lines["db.migrated"]["message_key"] == "migrated.ok"
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        engine.dispose()
        code, lines = run_check(config)
        assert code == 1 and lines["db.migrated"]["message_key"] == "migrated.ahead"


def test_a_closed_database_port_and_a_wrong_user(tmp_path: Path) -> None:
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    code, lines = run_check(write_central(tmp_path, database={"url": closed}))
    assert code == 1
    assert lines["db.reach"]["message_key"] == "db.refused"
    assert "\n" not in lines["db.reach"]["message"]
    assert lines["db.migrated"]["status"] == "skip"
    with pg_schema() as url:
        wrong = url.replace("postgres@", "nosuchrole:x@", 1)
        code, lines = run_check(write_central(tmp_path, database={"url": wrong}))
    assert code == 1 and lines["db.reach"]["message_key"] == "db.auth", lines["db.reach"]
    assert "x@" not in lines["db.reach"]["message"]  # the password is never printed


def test_wrong_broker_password_points_at_broker_central(
    tmp_path: Path, secured: tuple[Mosquitto, str]
) -> None:
    mq, _ = secured
    config = write_central(tmp_path, mqtt={"url": mq.url, "username": "central",
                                           "password": "stale"})  # fmt: skip
    code, lines = run_check(config)
    assert code == 1
    assert lines["mqtt.auth"]["message_key"] == "auth.refused_auth"
    assert "menjin central broker-central" in lines["mqtt.auth"]["hint"]


def test_keys_port_and_public_url_problems(tmp_path: Path) -> None:
    init_key_dir(tmp_path / "keys")
    (tmp_path / "keys" / "signing.key").chmod(0o644)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        unresolvable = {"public_url": "mqtts://no-such-host.invalid:8883"}
        config = write_central(tmp_path, http={"port": port}, mqtt=unresolvable)
        code, lines = run_check(config)
    assert code == 1
    assert lines["keys.signing"]["hint"] == f"chmod 600 {tmp_path / 'keys' / 'signing.key'}"
    assert lines["http.port"]["message"] == f"127.0.0.1:{port} is in use"
    assert lines["mqtt.public"]["message_key"] == "public.dns"


def test_loopback_public_url_is_a_warning(tmp_path: Path) -> None:
    code, lines = run_check(write_central(tmp_path, mqtt={"public_url": ""}))
    assert lines["mqtt.public"]["status"] == "warn"
    assert "public_url" in lines["mqtt.public"]["hint"]
    assert code == 1  # nothing listens on the broker port in this config
