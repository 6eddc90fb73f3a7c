"""Pass hints end to end: a real central, Mosquitto and gate. A phone pass enrolled through the
API reaches its site's gate, which verifies it ahead of its first live code; an old gate's
request gets the delta of before; hostile texts are refused and leave nothing behind."""

from __future__ import annotations

import json
import os
import queue
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from central.auth import Role
from central.store import presence
from central.store.db import make_engine
from edge.assemble import Gate, assemble_gate
from edge.config import load_gate_settings
from edge.gate import DeviceFactories
from edge.pass_hints import HintRefusal, PassHints
from edge.sigmemo import signature_digest
from protocol import topics
from protocol.epass import PassData, encode_pass, parse_pass
from protocol.epass_bound import encode_bound_pass
from protocol.keyfiles import init_key_dir, load_signing_key
from protocol.livecode import slot_of
from protocol.messages import MAX_HINTED_PASSES, SyncDelta
from protocol.topics import GateTopic
from tests.integration.agent_helpers import wait_for, write_config
from tests.integration.live_central import api_token, central_db, serving
from tests.integration.phone_helpers import PASSWORD, SITE, Central
from tests.integration.services import Mosquitto
from tests.integration.stack import central_config
from tests.integration.test_api_enrol import key_body, token_of
from tests.unit.livecode_helpers import (
    ISSUER,
    RESIDENT,
    UNTRUSTED,
    Phone,
    ed25519_phone,
    forged_live_code,
)

OLD_KEYS = ["v", "version", "snapshot", "revoked", "unrevoked"]
HOSTILE_SITE = "hint-hostile"  # no gate of it is registered at central: central stays out
NOW = int(time.time())
GOOD = replace(RESIDENT, site=HOSTILE_SITE, valid_from=NOW - 86_400, valid_until=NOW + 86_400)


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[Central]:
    workdir = tmp_path_factory.mktemp("hints-central")
    init_key_dir(workdir / "keys")
    db_url = central_db(workdir / "central.db", PASSWORD, [Role.ADMIN])
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for gate in ("east", "old", "new"):
            presence.register_gate(conn, SITE, gate, datetime.now(UTC))
    engine.dispose()
    with serving(central_config(workdir, db_url, broker.url)) as url:
        yield Central(url, api_token(url, Role.ADMIN.value, PASSWORD), workdir / "keys")


def _gate(tmp_path: Path, broker: Mosquitto, key: SigningKey, site: str) -> Gate:
    """A real gate (no devices) with its uplink to the broker, started."""
    workdir = tmp_path / "gate"
    workdir.mkdir()
    mqtt_cfg = {"url": broker.url, "status_interval_s": 1.0}
    config = write_config(workdir, key, {"mqtt": mqtt_cfg}, {"site": site, "gate": "east"})
    gate = assemble_gate(load_gate_settings(config), DeviceFactories())
    assert gate.bridge is not None
    gate.bridge.start()
    wait_for(lambda: gate.bridge is not None and gate.bridge.connected, 10, "the gate to connect")
    return gate


def _counters(gate: Gate) -> dict[str, int | bool]:
    assert gate.bridge is not None
    return gate.bridge.own_counters()


def _enrol(central: Central) -> tuple[str, Phone]:
    """A device-bound pass issued and enrolled through the API: its static text, its phone."""
    phone = ed25519_phone(os.urandom(32))
    token = token_of(central.issue()["enrol_url"])
    r = httpx.post(f"{central.url}/api/v1/enrol/{token}", json=key_body(phone))
    assert r.status_code == 201, r.text
    return str(r.json()["text"]), phone


def test_an_enrolled_pass_is_verified_before_its_first_live_code(
    central: Central, broker: Mosquitto, tmp_path: Path
) -> None:
    gate = _gate(tmp_path, broker, load_signing_key(central.keys), SITE)
    try:
        wait_for(lambda: gate.cache.last_sync() is not None, 10, "the gate's first sync")
        text, phone = _enrol(central)
        signed = parse_pass(text)
        key = gate.agent.policy.current().trusted[signed.key_id]
        digest = signature_digest(signed, key)
        pass_id = signed.data.pass_id_hex
        wait_for(lambda: gate.cache.pass_record(pass_id, None, digest).signature_verified, 10,
                 "the gate's store to remember the pass's issuer signature")  # fmt: skip
        live = phone.live(text, signed.data.pass_id, slot_of(time.time()))
        decision, _ = gate.agent.present(live)
        assert decision.granted, decision
        assert decision.signature_digest is None  # the store vouched: one verify, the phone's
        assert _counters(gate)["pass_hints_verified"] == 1
        assert _counters(gate)["pass_hints_unsupported"] == 0  # central answered with passes
    finally:
        gate.close()


class Client:
    """A plain MQTT client: publishes as a gate would, collects what central answers."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.got: queue.Queue[bytes] = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda _c, _u, msg: self.got.put(bytes(msg.payload))
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(5), "no SUBACK"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _answer(broker: Mosquitto, gate: str, request: str) -> bytes:
    client = Client(broker, topics.gate_topic(SITE, gate, GateTopic.DELTA))
    try:
        client.client.publish(topics.gate_topic(SITE, gate, GateTopic.SYNC_REQUEST), request, 1)
        return client.got.get(timeout=10)
    finally:
        client.close()


def test_an_old_style_request_gets_the_delta_of_before(central: Central, broker: Mosquitto) -> None:
    text, _ = _enrol(central)
    old = _answer(broker, "old", '{"v": 1, "since": 0}')
    assert list(json.loads(old)) == OLD_KEYS and b"passes" not in old
    new = _answer(broker, "new", '{"v": 1, "since": 0, "passes": true}')
    assert list(json.loads(new)) == [*OLD_KEYS, "passes"]
    assert text in json.loads(new)["passes"]
    # Apart from the new field, the same answer byte for byte.
    assert SyncDelta.model_validate_json(new).model_copy(update={"passes": []}).model_dump_json(
    ).encode() == old  # fmt: skip


def _bound(data: PassData = GOOD, key: SigningKey = ISSUER) -> str:
    return encode_bound_pass(data, ed25519_phone().device, key)


def _hostile() -> list[str]:
    static = _bound()
    return [
        forged_live_code(static),  # the issuer's signature fails
        _bound(replace(GOOD, site="hutong-12")),
        _bound(replace(GOOD, gates=("west",))),
        _bound(replace(GOOD, valid_from=NOW - 9 * 86_400, valid_until=NOW - 8 * 86_400)),
        _bound(key=UNTRUSTED),
        encode_pass(GOOD, ISSUER),  # version 1: not device-bound
        "",
        "HELLO WORLD",
        "MJ2:" + "0" * 60,
    ]


def _send_delta(client: Client, payload: str) -> None:
    topic = topics.gate_topic(HOSTILE_SITE, "east", GateTopic.DELTA)
    client.client.publish(topic, payload, 1).wait_for_publish(5)


def _delta(texts: list[str]) -> str:
    return SyncDelta(version=0, snapshot=False, passes=texts).model_dump_json()


def _remembered(gate: Gate) -> int:
    return int(gate.cache.db.execute("SELECT count(*) FROM verified_signatures").fetchone()[0])


def test_hostile_hints_are_refused_counted_and_leave_nothing(
    broker: Mosquitto, tmp_path: Path
) -> None:
    gate = _gate(tmp_path, broker, ISSUER, HOSTILE_SITE)
    pub = Client(broker, "nothing/here")
    try:
        hostile = _hostile()
        _send_delta(pub, _delta(hostile))
        wait_for(lambda: _counters(gate)["pass_hints_rejected"] == len(hostile), 10, "refusals")
        # Out of the wire's bounds (a live code is longer than any static pass): the delta is
        # refused whole by validation, as any message out of bounds.
        live = ed25519_phone().live(_bound(), GOOD.pass_id, slot_of(time.time()))
        rejected = _counters(gate)["mqtt_rejected"]
        for text in ("A" * 214, live):
            raw = _delta([]).replace('"unrevoked":[]', f'"unrevoked":[],"passes":["{text}"]')
            _send_delta(pub, raw)
        wait_for(lambda: _counters(gate)["mqtt_rejected"] == rejected + 2, 10, "both refused")
        # Behind that bound the pre-verifier refuses a live code all the same.
        assert gate.bridge is not None and isinstance(gate.bridge.hints, PassHints)
        assert gate.bridge.hints.check_batch([live]) == 0
        assert gate.bridge.hints.refused[HintRefusal.LIVE_CODE] == 1
        assert _remembered(gate) == 0 and _counters(gate)["pass_hints_verified"] == 0
        assert _counters(gate)["pass_hints_rejected"] == len(hostile) + 1
        # The gate decides as ever: the forged pass is refused, and the genuine one is verified
        # in full (nothing vouched for it).
        forged, _ = gate.agent.present(forged_live_code(live))
        assert forged.reason.value == "bad_signature"
        decision, _ = gate.agent.present(live)
        assert decision.granted and decision.signature_digest is not None
        # And the same path remembers a genuine text (so the refusals above were the checks').
        other = _bound(replace(GOOD, pass_id=os.urandom(8)))
        _send_delta(pub, _delta([other]))
        wait_for(lambda: _counters(gate)["pass_hints_verified"] == 1, 10, "a verified hint")
        assert _remembered(gate) == 2  # the decision's and the hint's
    finally:
        pub.close()
        gate.close()


def _decide_ms(gate: Gate, text: str, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        gate.agent.present(text, record=False)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def test_a_flood_of_hints_is_bounded_and_decisions_go_on(
    broker: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = _gate(tmp_path, broker, ISSUER, HOSTILE_SITE)
    pub = Client(broker, "nothing/here")
    printed = encode_pass(GOOD, ISSUER)
    try:
        quiet = _decide_ms(gate, printed, 200)
        forged = [forged_live_code(_bound(replace(GOOD, pass_id=os.urandom(8))))
                  for _ in range(MAX_HINTED_PASSES)]  # fmt: skip
        good = [_bound(replace(GOOD, pass_id=os.urandom(8))) for _ in range(MAX_HINTED_PASSES)]
        timings = {}
        for name, texts, counter in (("forged", forged, "pass_hints_rejected"),
                                     ("good", good, "pass_hints_verified")):  # fmt: skip
            start = time.monotonic()
            _send_delta(pub, _delta(texts))
            busy: list[float] = []
            while not busy or (
                _counters(gate)[counter] < len(texts) and time.monotonic() - start < 30
            ):
                busy += _decide_ms(gate, printed, 5)
            timings[name] = (time.monotonic() - start, busy)
            assert _counters(gate)[counter] == len(texts)
        assert _remembered(gate) == MAX_HINTED_PASSES  # the good ones, and none of the forged
        assert _counters(gate)["pass_hints_dropped"] == 0
        with capsys.disabled():
            print(f"\nquiet decide p50 {statistics.median(quiet):.3f} ms, max {max(quiet):.3f} ms")
            for name, (took, busy) in timings.items():
                print(f"{MAX_HINTED_PASSES} {name} hints: done in {took:.2f} s after the publish;"
                      f" {len(busy)} decisions meanwhile, p50 {statistics.median(busy):.3f} ms,"
                      f" max {max(busy):.3f} ms")  # fmt: skip
        for _, busy in timings.values():
            assert statistics.median(busy) < 20 * statistics.median(quiet) + 1.0  # loose: 2 cores
    finally:
        pub.close()
        gate.close()
