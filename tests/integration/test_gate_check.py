"""`menjin gate check` as a technician runs it: the real CLI against pty devices and Mosquitto."""

from __future__ import annotations

import grp
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as mqtt
import pytest
import serial
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from central import broker_users
from edge.cache import GateCache
from edge.devices.sim_modbus import ModbusSlaveSim
from edge.devices.sim_serial import AsciiThermoSim, LcusRelaySim, PtySim, QrHeadSim
from protocol import topics
from protocol.messages import CentralStatus, GateState
from tests.conftest import skip_or_fail
from tests.integration.agent_helpers import issue, journal, make_keys, write_config
from tests.integration.services import Mosquitto, free_port
from tests.integration.stack import MENJIN

GATE_USER = broker_users.gate_username("s1", "east")


@dataclass
class Bench:
    """A gate's hardware on ptys, its key, and a broker that wants this gate's password."""

    root: Path
    key: SigningKey
    sims: dict[str, Any]
    broker: Mosquitto
    password: str

    def config(self, **changes: dict[str, object]) -> Path:
        sections: dict[str, dict[str, object]] = {
            "reader": {"kind": "serial", "port": self.sims["qr"].path},
            "thermometer": {"kind": "ascii", "port": self.sims["thermo"].path},
            "relay": {"kind": "lcus", "port": self.sims["relay"].path, "pulse_ms": 200},
            "door": {"kind": "modbus", "port": self.sims["door"].path},
            "mqtt": {"url": self.broker.url, "username": GATE_USER, "password": self.password},
        }
        for name, section in changes.items():
            sections[name] = sections.get(name, {}) | section
        gate = sections.pop("gate", {"temperature": "required"})
        return write_config(self.root, self.key, sections, gate)


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, str]]:
    root = tmp_path_factory.mktemp("secured")
    passwd, acl = root / "passwd", root / "acl"
    password = broker_users.new_password()
    broker_users.add_user(passwd, GATE_USER, password)
    broker_users.add_acl(acl, broker_users.gate_acl("s1", "east"))
    broker_users.add_user(passwd, "central", password)
    broker_users.add_acl(acl, broker_users.central_acl("central"))
    mq = Mosquitto(root, extra_conf=f"allow_anonymous false\npassword_file {passwd}\n"
                   f"acl_file {acl}\n")  # fmt: skip
    mq.start()
    yield mq, password
    mq.stop()


@pytest.fixture
def bench(secured_broker: tuple[Mosquitto, str]) -> Iterator[Bench]:
    # Not tmp_path: the permission test runs the check as another user, who must reach it.
    root = Path(tempfile.mkdtemp(prefix="menjin-check-"))
    root.chmod(0o777)
    sims: dict[str, PtySim] = {
        "qr": QrHeadSim(root, "ttyUSB0"),
        "thermo": AsciiThermoSim(root, "ttyUSB1", celsius=36.4),
        "relay": LcusRelaySim(root, "ttyUSB2"),
        "door": ModbusSlaveSim(root, "ttyUSB3"),
    }
    for sim in sims.values():
        sim.start()
    mq, password = secured_broker
    try:
        yield Bench(root, make_keys(root), sims, mq, password)
    finally:
        for sim in sims.values():
            sim.stop()
        shutil.rmtree(root, ignore_errors=True)


class CentralHeartbeat:
    """Publishes central's status as central does (retained, every interval), with a given clock."""

    def __init__(self, broker: Mosquitto, password: str, offset_s: float = 0.0) -> None:
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.username_pw_set("central", password)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.offset_s = offset_s
        self.state = GateState.ONLINE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            at = datetime.now(UTC) + timedelta(seconds=self.offset_s)
            status = CentralStatus(state=self.state, at=at if self.state == "online" else None)
            self.client.publish(topics.central_status_topic(), status.model_dump_json(), 1, True)

    def __enter__(self) -> CentralHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        # Leave no retained status behind for the next test.
        self.client.publish(topics.central_status_topic(), b"", 1, True).wait_for_publish(5)
        self.client.loop_stop()


def run_check(config: Path, *extra: str, as_user: list[str] | None = None) -> tuple[int, Any]:
    args = [MENJIN, "gate", "check", "--config", str(config), "--json", "--lang", "en",
            "--central-wait", "3", *extra]  # fmt: skip
    proc = subprocess.run([*(as_user or []), *args], capture_output=True, text=True, timeout=90)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def line(report: Any, check: str) -> dict[str, Any]:
    found = [c for c in report["checks"] if c["check"] == check]
    assert found, f"no {check} line in {report}"
    return found[0]


def statuses(report: Any) -> dict[str, str]:
    return {c["check"]: c["status"] for c in report["checks"]}


def test_a_working_gate_is_ready_and_says_what_each_part_does(bench: Bench) -> None:
    with CentralHeartbeat(bench.broker, bench.password):
        code, report = run_check(bench.config())
    assert code == 0, report
    assert report["ready"] is True
    got = statuses(report)
    for check in ("config.file", "config.ids", "config.keys", "config.policy", "store.file",
                  "store.fs", "store.disk", "reader.open", "thermometer", "relay", "door",
                  "mqtt.reach", "mqtt.auth", "central.status", "clock.skew"):  # fmt: skip
        assert got[check] == "ok", (check, line(report, check))
    assert got["mqtt.tls"] == "warn"  # plain mqtt:// on a test broker
    assert got["sync.age"] == "warn"  # a new gate has never synced
    assert line(report, "thermometer")["message"] == "answers: 36.4 °C"
    assert "not pulsed" in line(report, "relay")["message"]
    assert bench.sims["relay"].history == []  # no --pulse: the door stayed shut
    assert line(report, "door")["message"] == "closed"
    assert abs(line(report, "clock.skew")["facts"]["skew"]) < 2


def test_the_default_table_is_chinese_and_english_on_request(bench: Bench) -> None:
    config = bench.config(mqtt={"url": ""})
    zh = subprocess.run([MENJIN, "gate", "check", "--config", str(config)],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert zh.returncode == 0, zh.stdout
    assert "测温仪" in zh.stdout and "36.4 °C" in zh.stdout and "可以运行" in zh.stdout
    en = subprocess.run([MENJIN, "gate", "check", "--config", str(config), "--lang", "en"],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "thermometer" in en.stdout and "Ready: nothing must be fixed." in en.stdout


def test_pulse_clicks_the_relay_and_reads_it_back(bench: Bench) -> None:
    code, report = run_check(bench.config(mqtt={"url": ""}), "--pulse")
    assert code == 0, report
    assert line(report, "relay")["message"] == "pulsed 200 ms and read back ON"
    assert [on for _, _, on in bench.sims["relay"].history] == [True, False]


def test_a_stuck_relay_fails_the_pulse(bench: Bench) -> None:
    bench.sims["relay"].stick()
    code, report = run_check(bench.config(mqtt={"url": ""}), "--pulse")
    assert code == 1
    assert line(report, "relay")["status"] == "fail"
    assert "channel (1)" in line(report, "relay")["hint"]


def test_a_wrong_tty_lists_the_ports_that_exist(bench: Bench) -> None:
    config = bench.config(reader={"port": str(bench.root / "ttyUSB9")}, mqtt={"url": ""})
    code, report = run_check(config)
    assert code == 1
    reader = line(report, "reader.open")
    assert reader["status"] == "fail" and reader["message"].endswith("ttyUSB9 does not exist")
    assert bench.sims["qr"].path in reader["hint"] and bench.sims["relay"].path in reader["hint"]


def test_a_port_without_permission_names_the_group_to_join(bench: Bench) -> None:
    tty = bench.sims["qr"].tty
    assert tty is not None
    if os.geteuid() == 0:
        # root opens anything: check as nobody, who is not in the pty's group.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            skip_or_fail("setpriv is needed to run the check as another user")
        as_user = [str(setpriv), "--reuid=65534", "--regid=65534", "--clear-groups"]
        config = bench.config(mqtt={"url": ""})
        config.chmod(0o644)
        code, report = run_check(config, as_user=as_user)
    else:
        os.chmod(tty, 0)
        code, report = run_check(bench.config(mqtt={"url": ""}))
    assert code == 1
    reader = line(report, "reader.open")
    assert reader["status"] == "fail" and "permission denied" in reader["message"]
    group = grp.getgrgid(os.stat(tty).st_gid).gr_name  # dialout for a real /dev/ttyUSB0
    assert f"sudo usermod -aG {group} " in reader["hint"]


def test_a_port_held_by_the_running_agent_says_to_stop_it(bench: Bench) -> None:
    held = serial.Serial(bench.sims["qr"].path, exclusive=True)
    try:
        code, report = run_check(bench.config(mqtt={"url": ""}))
    finally:
        held.close()
    assert code == 1
    assert "systemctl stop menjin-gate" in line(report, "reader.open")["hint"]


def test_thermometer_silent_ambient_and_implausible(bench: Bench) -> None:
    config = bench.config(mqtt={"url": ""})
    bench.sims["thermo"].set_temperature(23.5)
    code, report = run_check(config)
    assert code == 0
    assert "nobody in front" in line(report, "thermometer")["message"]
    bench.sims["thermo"].set_temperature(95.0)
    code, report = run_check(config)
    assert code == 1 and line(report, "thermometer")["message_key"] == "thermo.implausible"
    bench.sims["thermo"].rate_hz = 0
    code, report = run_check(config)
    assert code == 1
    thermo = line(report, "thermometer")
    assert thermo["message_key"] == "thermo.silent" and "baud (9600)" in thermo["hint"]


def test_door_standing_open_is_reported(bench: Bench) -> None:
    bench.sims["door"].set_discrete_input(0, True)
    code, report = run_check(bench.config(mqtt={"url": ""}))
    assert code == 0  # a warning: the technician may have it open on purpose
    assert line(report, "door")["status"] == "warn"


def test_interactive_scan_is_read_and_decided(bench: Bench) -> None:
    config = bench.config(mqtt={"url": ""})
    text = issue(bench.key)
    stop = threading.Event()

    def keep_showing() -> None:
        while not stop.wait(0.3):
            bench.sims["qr"].scan(text)

    shower = threading.Thread(target=keep_showing, daemon=True)
    shower.start()
    try:
        code, dry = run_check(config, "--interactive", "--dry-run")
        assert code == 0, dry
        assert line(dry, "reader.scan")["message_key"] == "scan.decided_dry"
        assert line(dry, "reader.scan")["facts"]["verdict"] == "GRANT"
        assert [e.type for e in journal(bench.root / "gate-journal.db")] == []
        code, wet = run_check(config, "--interactive")
    finally:
        stop.set()
        shower.join()
    assert code == 0, wet
    scan = line(wet, "reader.scan")
    assert scan["message_key"] == "scan.decided" and scan["facts"]["reason"] == "ok"
    assert [e.seq for e in journal(bench.root / "gate-journal.db")] == [scan["facts"]["seq"]]


def test_nothing_shown_in_interactive_mode_fails_with_advice(bench: Bench) -> None:
    proc = subprocess.run(
        [MENJIN, "gate", "check", "--config", str(bench.config(mqtt={"url": ""})), "--lang",
         "en", "--interactive", "--scan-wait", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Show a pass to the reader now" in proc.stderr
    assert "nothing was read in 1 s" in proc.stdout and "serial (not keyboard) mode" in proc.stdout


def test_camera_reports_frame_size_and_rate_and_decodes_a_shown_pass(bench: Bench) -> None:
    import segno

    text = issue(bench.key)
    feed = bench.root / "feed"
    feed.mkdir()
    segno.make_qr(text).save(str(feed / "000.png"), scale=4, border=4)
    image = cv2.imread(str(feed / "000.png"))
    for n in range(1, 80):  # each image is shown for 5 frames: keep the code up for seconds
        shutil.copy(feed / "000.png", feed / f"{n:03}.png")
    config = bench.config(reader={"kind": "camera", "source": str(feed), "port": ""},
                          mqtt={"url": ""})  # fmt: skip
    code, report = run_check(config, "--interactive", "--dry-run")
    assert code == 0, report
    camera = line(report, "reader.open")["facts"]
    assert (camera["width"], camera["height"]) == (image.shape[1], image.shape[0])
    assert camera["fps"] > 5
    assert line(report, "reader.scan")["facts"]["verdict"] == "GRANT"


def test_wrong_broker_password_says_the_password_file_is_out_of_date(bench: Bench) -> None:
    code, report = run_check(bench.config(mqtt={"password": "stale"}))
    assert code == 1
    auth = line(report, "mqtt.auth")
    assert auth["status"] == "fail" and "refused user gate/s1/east" in auth["message"]
    assert "password file" in auth["hint"] and "gate-add" in auth["hint"]
    assert statuses(report)["central.status"] == "skip"


def test_unreachable_broker_and_offline_central(bench: Bench) -> None:
    closed = f"mqtt://127.0.0.1:{free_port()}"
    code, report = run_check(bench.config(mqtt={"url": closed}))
    assert code == 1 and line(report, "mqtt.reach")["message_key"] == "reach.refused"
    with CentralHeartbeat(bench.broker, bench.password) as central:
        central.state = GateState.OFFLINE
        time.sleep(0.5)
        code, report = run_check(bench.config())
    assert code == 1 and line(report, "central.status")["message_key"] == "central.offline"


def test_a_clock_hours_off_fails_and_points_at_ntp(bench: Bench) -> None:
    with CentralHeartbeat(bench.broker, bench.password, offset_s=3 * 3600):
        code, report = run_check(bench.config())
    assert code == 1
    clock = line(report, "clock.skew")
    assert clock["status"] == "fail" and clock["facts"]["skew"] > 3 * 3600 - 5
    assert "NTP" in clock["hint"]


def test_last_sync_age_comes_from_the_gate_store(bench: Bench) -> None:
    cache = GateCache(bench.root / "gate-journal.db")
    cache.apply_delta(3, True, [], [])
    cache.close()
    _, report = run_check(bench.config())  # not ready: no central here; the store is read
    assert line(report, "sync.age")["status"] == "ok", report
    assert line(report, "sync.age")["facts"]["age_h"] < 0.1


@pytest.mark.parametrize(
    ("changes", "check", "expected"),
    [
        ({"reader": {"kind": "usb"}}, "config.file", "reader.kind"),
        ({"gate": {"site": "s 1", "gate": "east"}}, "config.ids", "'s 1' is not a valid id"),
        ({"gate": {"temperature": "required"}, "thermometer": {"kind": "none"}},
         "config.policy", "every pass would be denied"),
    ],
    ids=["field-path", "bad-id", "policy"],
)  # fmt: skip
def test_config_problems_name_the_field(
    bench: Bench, changes: dict[str, dict[str, object]], check: str, expected: str
) -> None:
    code, report = run_check(bench.config(mqtt={"url": ""}, **changes))
    assert code == 1
    assert expected in line(report, check)["message"], line(report, check)


def test_a_dotted_id_is_a_warning_naming_nats(bench: Bench) -> None:
    _, report = run_check(bench.config(mqtt={"url": ""}, gate={"site": "s.1", "gate": "east"}))
    ids = line(report, "config.ids")
    assert (ids["status"], ids["message_key"]) == ("warn", "ids.dot") and "NATS" in ids["hint"]


def test_no_trusted_keys_fails(bench: Bench) -> None:
    config = bench.config(mqtt={"url": ""})
    text = config.read_text(encoding="utf-8")
    config.write_text(text[: text.index("[[keys.trusted]]")], encoding="utf-8")
    code, report = run_check(config)
    assert code == 1 and line(report, "config.keys")["message_key"] == "keys.none"


def test_store_directory_missing_and_disk_too_small(bench: Bench) -> None:
    config = bench.config(cache={"path": "nowhere/gate.db"}, mqtt={"url": ""})
    code, report = run_check(config)
    assert code == 1 and "install -d" in line(report, "store.file")["hint"]
    config = bench.config(agent={"snapshot_max_mb": 1e9}, mqtt={"url": ""})
    code, report = run_check(config)
    assert code == 1 and line(report, "store.disk")["status"] == "fail"
    assert "3000 events/day" in line(report, "store.disk")["message"]


def test_a_read_only_filesystem_fails(bench: Bench) -> None:
    ro = bench.root / "ro"
    ro.mkdir()
    config = bench.config(cache={"path": "ro/gate.db"}, mqtt={"url": ""})
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        skip_or_fail("mounting a read-only filesystem needs root and unshare")
    probe = subprocess.run([str(unshare), "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        skip_or_fail(f"unshare -m is not allowed here: {probe.stderr!r}")
    script = f'mount -t tmpfs -o ro tmpfs {ro} && exec "$@"'
    code, report = run_check(config, as_user=[str(unshare), "-m", "sh", "-c", script, "sh"])
    assert code == 1
    assert line(report, "store.fs")["message_key"] == "fs.readonly"
    assert line(report, "store.file")["hint"].startswith("remount it read-write")


def test_a_missing_config_is_one_failing_line(tmp_path: Path) -> None:
    code, report = run_check(tmp_path / "nope.toml")
    assert code == 1
    assert [c["check"] for c in report["checks"]] == ["config.file"]
    assert "does not exist" in report["checks"][0]["message"]


def test_tls_verifies_with_the_right_ca_and_fails_with_the_wrong_one(
    bench: Bench, tmp_path: Path
) -> None:
    from tests.integration.test_broker_auth import _make_certs

    _make_certs(tmp_path)
    mq = Mosquitto(tmp_path, extra_conf=(
        f"allow_anonymous true\ncafile {tmp_path / 'ca.crt'}\n"
        f"certfile {tmp_path / 'server.crt'}\nkeyfile {tmp_path / 'server.key'}\n"))  # fmt: skip
    mq.start()
    try:
        url = f"mqtts://localhost:{mq.port}"
        good = bench.config(mqtt={"url": url, "ca_file": str(tmp_path / "ca.crt")})
        _, report = run_check(good)
        assert line(report, "mqtt.tls")["status"] == "ok", report
        assert line(report, "mqtt.auth")["status"] == "ok"
        code, report = run_check(bench.config(mqtt={"url": url, "ca_file": ""}))
    finally:
        mq.stop()
    assert code == 1
    tls = line(report, "mqtt.tls")
    assert tls["message_key"] == "tls.verify" and "ca_file" in tls["hint"]
