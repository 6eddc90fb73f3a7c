"""The shipped broker setup on a real Mosquitto: our password hashes, per-gate ACL, bad
credentials, and TLS."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central import broker_users
from edge.cache import GateCache
from edge.mqtt_settings import MqttSection
from protocol import topics
from protocol.messages import EventBatch, EventType
from protocol.topics import GateTopic
from tests.conftest import skip_or_fail
from tests.integration.agent_helpers import bare_bridge, wait_for
from tests.integration.services import Mosquitto


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
    mq = Mosquitto(
        tmp_path, extra_conf=f"allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\n"
    )
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
    cfg = MqttSection(url=mq.url, username="gate.s1.east", password="wrong")
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
