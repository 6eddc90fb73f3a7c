"""The shipped broker setup on a real Mosquitto: our password hashes, per-gate ACL, bad
credentials, and TLS."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from central import broker_users
from central.store import presence
from central.store.db import make_engine, upgrade
from edge.cache import GateCache
from edge.mqtt_settings import MqttSection
from menjin.cli import build_app
from protocol import topics
from protocol.messages import MAX_MESSAGE_BYTES, EventBatch, EventType
from protocol.topics import GateTopic
from tests.conftest import skip_or_fail
from tests.integration.agent_helpers import bare_bridge, wait_for
from tests.integration.ingest_helpers import raw_client, running_central, running_gate
from tests.integration.services import Mosquitto, secured_conf, shipped
from tests.integration.stack import central_config, stored


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    creds = {"central": broker_users.new_password()}
    broker_users.add_user(passwd, "central", creds["central"])
    broker_users.add_acl(acl, broker_users.central_acl("central"))
    for gate in ("east", "west"):
        user = broker_users.gate_username("s1", gate)
        creds[gate] = broker_users.new_password()
        broker_users.add_user(passwd, user, creds[gate])
        broker_users.add_acl(acl, broker_users.gate_acl("s1", gate))
    mq = Mosquitto(tmp_path, extra_conf=secured_conf(passwd, acl))
    mq.start()
    yield mq, creds
    mq.stop()


def client(mq: Mosquitto, user: str, password: str) -> tuple[mqtt.Client, list[int]]:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    c.username_pw_set(user, password)
    codes: list[int] = []
    c.on_connect = lambda cl, u, f, rc, p: codes.append(rc.value)
    c.connect("127.0.0.1", mq.port)
    c.loop_start()
    wait_for(lambda: codes, 5, "CONNACK")
    return c, codes


def test_our_password_hashes_work_and_the_acl_confines_each_gate(
    secured: tuple[Mosquitto, dict[str, str]],
) -> None:
    mq, creds = secured
    central, codes = client(mq, "central", creds["central"])
    assert codes == [0]
    got: list[str] = []
    central.on_message = lambda c, u, m: got.append(m.topic)
    central.subscribe("menjin/v1/#", qos=1)
    probe = topics.central_status_topic()
    central.publish(probe, b"{}", qos=1)
    wait_for(lambda: probe in got, 5, "central's subscription to be live")
    got.clear()
    east, codes = client(mq, broker_users.gate_username("s1", "east"), creds["east"])
    assert codes == [0]
    own = topics.gate_topic("s1", "east", GateTopic.EVENTS)
    other = topics.gate_topic("s1", "west", GateTopic.EVENTS)
    east.publish(own, b"{}", qos=1).wait_for_publish(5)
    wait_for(lambda: own in got, 5, "the gate's own publish")
    # Denied publishes: the broker drops them (and may drop the connection, as MQTT allows).
    east.publish(other, b"{}", qos=1)
    east.publish(topics.gate_topic("s1", "east", GateTopic.ACK), b"{}", qos=1)
    time.sleep(0.5)
    assert got == [own]
    for c in (central, east):
        c.loop_stop()


def test_bad_credentials_stop_the_gate_loudly(
    secured: tuple[Mosquitto, dict[str, str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mq, _ = secured
    cache = GateCache(tmp_path / "g.db")
    cfg = MqttSection(
        url=mq.url, username=broker_users.gate_username("s1", "east"), password="wrong"
    )
    bridge, bare = bare_bridge(cfg, cache, "s1", "east")
    bridge.start()
    try:
        wait_for(lambda: bridge.auth_failed, 10, "auth failure")
        assert "refused this gate's credentials" in caplog.text
        assert bare.reasons == ["mqtt_auth"]
        time.sleep(2.5)  # paho would have retried by now if we had let it
        assert not bridge.connected
        assert caplog.text.count("refused this gate's credentials") == 1
    finally:
        bridge.close()
        cache.close()


def _make_certs(d: Path) -> None:
    if shutil.which("openssl") is None:
        skip_or_fail("openssl is needed to make test certificates")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=menjin-test-ca", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
        "-out", "server.csr")  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt")  # fmt: skip


def test_gate_talks_tls_to_the_broker(tmp_path: Path) -> None:
    _make_certs(tmp_path)
    mq = Mosquitto(
        tmp_path,
        extra_conf=(
            f"allow_anonymous true\ncafile {tmp_path / 'ca.crt'}\n"
            f"certfile {tmp_path / 'server.crt'}\nkeyfile {tmp_path / 'server.key'}\n"
        ),
    )
    mq.start()
    cache = GateCache(tmp_path / "g.db")
    cfg = MqttSection(url=f"mqtts://localhost:{mq.port}", ca_file=str(tmp_path / "ca.crt"))
    bridge, _ = bare_bridge(cfg, cache, "s1", "east")
    seen: list[bytes] = []
    watcher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    watcher.tls_set(ca_certs=str(tmp_path / "ca.crt"))
    watcher.on_message = lambda c, u, m: seen.append(m.payload)
    watcher.connect("localhost", mq.port)
    watcher.subscribe(topics.gate_topic("s1", "east", GateTopic.EVENTS), qos=1)
    watcher.loop_start()
    bridge.start()
    try:
        wait_for(lambda: bridge.connected, 10, "TLS connection")
        cache.journal_append(EventType.DECISION, datetime.now(UTC), granted=True, reason="ok")
        bridge.notify()
        wait_for(lambda: seen, 5, "an events batch over TLS")
        batch = EventBatch.model_validate_json(seen[0])
        assert [e.type for e in batch.events] == [EventType.DECISION]
    finally:
        bridge.close()
        watcher.loop_stop()
        cache.close()
        mq.stop()


def test_plain_client_cannot_use_the_tls_listener(tmp_path: Path) -> None:
    _make_certs(tmp_path)
    mq = Mosquitto(
        tmp_path,
        extra_conf=(
            f"allow_anonymous true\ncafile {tmp_path / 'ca.crt'}\n"
            f"certfile {tmp_path / 'server.crt'}\nkeyfile {tmp_path / 'server.key'}\n"
        ),
    )
    mq.start()
    try:
        codes: list[int] = []
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        c.on_connect = lambda cl, u, f, rc, p: codes.append(rc.value)
        c.connect("127.0.0.1", mq.port)
        c.loop_start()
        time.sleep(1.5)
        c.loop_stop()
        assert codes == []  # never got a CONNACK over plain TCP
    finally:
        mq.stop()


def _disconnects(c: mqtt.Client) -> list[int]:
    seen: list[int] = []
    c.on_disconnect = lambda cl, u, f, rc, p: seen.append(rc.value)
    return seen


def test_a_leaked_gate_credential_cannot_kick_another_gate_off(
    secured: tuple[Mosquitto, dict[str, str]],
) -> None:
    """East's credentials with west's client id: the broker uses east's user name as the client
    id, so west stays connected and keeps delivering."""
    mq, creds = secured
    west_id = "menjin-gate-s1-west"
    west = raw_client(mq.port, broker_users.gate_username("s1", "west"), creds["west"], west_id)
    wait_for(west.is_connected, 5, "west connected")
    west_drops = _disconnects(west)
    attacker = raw_client(mq.port, broker_users.gate_username("s1", "east"), creds["east"], west_id)
    wait_for(attacker.is_connected, 5, "the attacker connected")
    time.sleep(1.0)
    assert west_drops == [] and west.is_connected()
    watcher, _ = client(mq, "central", creds["central"])
    got: list[str] = []
    watcher.on_message = lambda c, u, m: got.append(m.topic)
    watcher.subscribe(topics.gate_topic("s1", "west", GateTopic.STATUS), qos=1)
    time.sleep(0.3)
    west.publish(topics.gate_topic("s1", "west", GateTopic.STATUS), b"{}", qos=1)
    wait_for(lambda: got, 5, "west still delivers")
    for c in (west, attacker, watcher):
        c.loop_stop()


def test_central_and_a_gate_work_with_client_ids_bound_to_user_names(
    secured: tuple[Mosquitto, dict[str, str]], tmp_path: Path
) -> None:
    mq, creds = secured
    central_mqtt = {"url": mq.url, "username": "central", "password": creds["central"]}
    cfg = MqttSection(
        url=mq.url, username=broker_users.gate_username("s1", "east"), password=creds["east"]
    )
    with (
        running_central(tmp_path, central_mqtt, gates=("east",), site="s1") as central,
        running_gate(tmp_path, cfg, "east", site="s1") as east,
    ):
        east.journal(EventType.DECISION, granted=True, reason="ok")
        east.bridge.notify()
        wait_for(lambda: east.cache.backlog() == 0, 10, "the event stored and acked")
        assert len(stored(central.url, "s1", "east")) == 1


def test_the_broker_drops_payloads_over_the_shipped_size_limit(live_broker: Mosquitto) -> None:
    assert shipped("message_size_limit").split()[1] == str(MAX_MESSAGE_BYTES)
    got: list[int] = []
    watcher = raw_client(live_broker.port)
    watcher.on_message = lambda c, u, m: got.append(len(m.payload))
    watcher.subscribe("size-test/#", qos=1)
    time.sleep(0.3)
    # Mosquitto 2.0 drops the big one and may then disconnect its sender: one client each.
    big = raw_client(live_broker.port)
    big.publish("size-test/big", b"x" * (MAX_MESSAGE_BYTES + 1), qos=1)
    time.sleep(1.0)
    at_limit = raw_client(live_broker.port)
    at_limit.publish("size-test/probe", b"x" * MAX_MESSAGE_BYTES, qos=1).wait_for_publish(10)
    wait_for(lambda: got, 10, "the message at the limit")
    time.sleep(0.3)
    assert got == [MAX_MESSAGE_BYTES]
    for c in (watcher, big, at_limit):
        c.loop_stop()


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app("central"), ["central", *args])
    return result.exit_code, result.stdout, result.stderr


def _connects(mq: Mosquitto, user: str, password: str) -> bool:
    c, codes = client(mq, user, password)
    c.loop_stop()
    return codes == [0]


def test_new_dotted_ids_are_refused_and_a_taken_gate_needs_rotate(
    tmp_path: Path, live_broker: Mosquitto
) -> None:
    """A new id may not hold '.' (NATS's MQTT gateway drops a client publishing such a topic);
    (x.y, z) and (x, y.z), which once shared the user gate.x.y.z, still get distinct names for
    gates provisioned before; a second gate-add of a taken gate needs --rotate."""
    config = central_config(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", live_broker.url)
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    files = ["--config", str(config), "--passwd", str(passwd), "--acl", str(acl)]
    for site, gate in (("x.y", "z"), ("x", "y.z")):
        code, _, err = _cli("gate-add", site, gate, *files)
        assert code == 2 and "no '.'" in err, err
    assert not passwd.exists() or "x" not in passwd.read_text()
    assert broker_users.gate_username("x.y", "z") != broker_users.gate_username("x", "y.z")
    code, out, err = _cli("gate-add", "x", "y-z", *files)
    assert code == 0, err
    old = json.loads(out)
    code, _, err = _cli("gate-add", "x", "y-z", *files)
    assert code == 2 and "--rotate" in err
    mq = Mosquitto(tmp_path, extra_conf=secured_conf(passwd, acl))
    mq.start()
    try:
        assert _connects(mq, old["username"], old["password"])
        code, out, err = _cli("gate-add", "x", "y-z", *files, "--rotate")
        assert code == 0, err
        mq.stop()
        mq.start()  # mosquitto re-reads the password file
        assert not _connects(mq, old["username"], old["password"])
        assert _connects(mq, old["username"], json.loads(out)["password"])
    finally:
        mq.stop()


def test_broker_migrate_keeps_passwords_and_drops_a_shared_old_name(
    tmp_path: Path, live_broker: Mosquitto
) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    config = central_config(tmp_path, db, live_broker.url)
    engine = make_engine(db)
    upgrade(engine)
    with engine.begin() as conn:
        for site, gate in (("s1", "east"), ("x.y", "z"), ("x", "y.z")):
            presence.register_gate(conn, site, gate, datetime.now(UTC))
    engine.dispose()
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    old = broker_users.legacy_gate_username
    broker_users.add_user(passwd, old("s1", "east"), "east-pw")
    broker_users.add_user(passwd, old("x", "y.z"), "shared-pw")  # x.y/z's, overwritten
    acl.write_text(f"user {old('s1', 'east')}\ntopic write menjin/v1/s1/east/events\n"
                   f"user {old('x.y', 'z')}\ntopic write menjin/v1/x.y/z/events\n")  # fmt: skip
    files = ["--config", str(config), "--passwd", str(passwd), "--acl", str(acl)]
    code, out, err = _cli("broker-migrate", *files)
    assert code == 1 and "x.y/z" in err
    report = json.loads(out)
    assert report["migrated"] == ["s1/east"]
    assert sorted(report["colliding"]) == ["x.y/z", "x/y.z"]
    assert report["dropped"] == ["gate.x.y.z"]
    mq = Mosquitto(tmp_path, extra_conf=secured_conf(passwd, acl))
    mq.start()
    try:
        assert _connects(mq, broker_users.gate_username("s1", "east"), "east-pw")
        assert _connects(mq, old("s1", "east"), "east-pw")  # until --drop-legacy
        assert not _connects(mq, old("x", "y.z"), "shared-pw")
        code, out, err = _cli("broker-migrate", *files, "--drop-legacy")
        assert json.loads(out)["dropped"] == [old("s1", "east")]
        mq.stop()
        mq.start()
        assert not _connects(mq, old("s1", "east"), "east-pw")
        assert _connects(mq, broker_users.gate_username("s1", "east"), "east-pw")
    finally:
        mq.stop()
    assert f"user {old('s1', 'east')}\n" not in acl.read_text()
