"""`menjin demo`: a broker, central, three simulated gates and a traffic script, on one machine.

Everything is real except the hardware: gates run `menjin gate run` against pty simulators of a
QR reader head, a thermometer and a relay board, exactly as they would against /dev/ttyUSB*.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from menjin.demo_broker import DemoBroker, free_port
from menjin.demo_http import DemoApi
from menjin.probes import PortState, port_state
from protocol.fsmodes import private_dir, write_private
from protocol.settings_file import StartupError

demo_app = typer.Typer(help="Run the end-to-end demo on embedded defaults.")
SITE = "hutong-12"
DEFAULT_HTTP_PORT = 8080
GATES = {"east": "required", "west": "advisory", "north": "off"}  # gate -> temperature policy


@dataclass
class DemoGate:
    """One simulated gate: its config, its device simulators and its agent process."""

    name: str
    config: Path
    sims: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    proxy: Any = None

    def start(self, log_dir: Path) -> None:
        log = (log_dir / f"gate-{self.name}.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "menjin", "gate", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for sim in self.sims.values():
            sim.stop()
        if self.proxy is not None:
            self.proxy.close()


def say(message: str) -> None:
    typer.echo(f"[{datetime.now().strftime('%H:%M:%S')}] {message}")


def write_central_config(root: Path, broker: DemoBroker, port: int) -> Path:
    from protocol.settings_file import render_toml

    path = root / "central.toml"
    write_private(
        path,
        render_toml(
            {
                "database": {"url": "sqlite:///central.db"},
                "mqtt": {"url": broker.url, "shared_subscriptions": broker.shared},
                "keys": {"signing": "keys"},
                "http": {"host": "127.0.0.1", "port": port},
                "ingest": {"offline_grace_s": 20.0},
                "auth": {"secret": secrets.token_urlsafe(32)},
            },
            {},
        ),
    )
    return path


def create_admin(config: Path, password: str) -> None:
    from central import auth
    from central.config import load_central_settings
    from central.store.db import make_engine, upgrade

    settings = load_central_settings(config)
    engine = make_engine(settings.database_url())
    upgrade(engine)
    with engine.begin() as conn:
        try:
            auth.create_user(conn, "admin", password, auth.Role.ADMIN, datetime.now(UTC))
        except auth.UserExistsError:
            auth.set_password(conn, "admin", password)
        for role in (auth.Role.GUARD, auth.Role.VIEWER):
            try:
                auth.create_user(conn, role.value, password, role, datetime.now(UTC))
            except auth.UserExistsError:
                auth.set_password(conn, role.value, password)
    engine.dispose()


def provision_gate(api: DemoApi, root: Path, name: str, broker_url: str) -> DemoGate:
    """Provision through the API, then attach simulated devices at stable tty paths."""
    from edge.devices.sim_serial import AsciiThermoSim, LcusRelaySim, QrHeadSim
    from protocol.settings_file import render_toml

    policy = GATES[name]
    body = api.post("/api/v1/gates", {"site": SITE, "gate": name, "direction": "both",
                                      "temperature": policy})  # fmt: skip
    cfg = tomllib.loads(body["config_toml"])
    dev = root / "dev"
    dev.mkdir(exist_ok=True)
    gate = DemoGate(name, root / f"gate-{name}.toml")
    gate.sims["qr"] = QrHeadSim(dev, f"ttyQR-{name}").start()
    gate.sims["relay"] = LcusRelaySim(dev, f"ttyRL-{name}").start()
    sections: dict[str, dict[str, Any]] = {
        "gate": cfg["gate"],
        "cache": cfg["cache"],
        "mqtt": cfg["mqtt"] | {"url": broker_url, "status_interval_s": 5.0},
        "reader": {"kind": "serial", "port": gate.sims["qr"].path},
        "relay": {"kind": "lcus", "port": gate.sims["relay"].path, "pulse_ms": 300},
        "agent": {"snapshot_dir": f"snapshots-{name}", "retest_pause_s": 1.0},
    }
    if policy != "off":
        gate.sims["thermo"] = AsciiThermoSim(dev, f"ttyTH-{name}", celsius=36.6).start()
        sections["thermometer"] = {"kind": "ascii", "port": gate.sims["thermo"].path}
    # It holds the gate's broker password.
    write_private(gate.config, render_toml(sections, {"keys.trusted": cfg["keys"]["trusted"]}))
    return gate


def issue_passes(api: DemoApi) -> dict[str, str]:
    """Residents, a visitor, an expired pass and a revoked one; returns name -> pass text."""
    now = datetime.now(UTC)
    year = 365 * 86400

    def issue(holder: str, kind: str, start: float, end: float, **extra: Any) -> str:
        body = {"site": SITE, "holder": holder, "kind": kind,
                "valid_from": datetime.fromtimestamp(start, UTC).isoformat(),
                "valid_until": datetime.fromtimestamp(end, UTC).isoformat(), **extra}  # fmt: skip
        out = api.post("/api/v1/passes", body)
        return f"{out['pass_id']}|{out['text']}"

    t = now.timestamp()
    passes = {
        "resident 张三华": issue("张三华", "resident", t - year, t + year, unit="3-2-101"),
        "resident 李秀英": issue("李秀英", "resident", t - year, t + year, unit="5-1-302"),
        "tenant 王建国": issue("王建国", "tenant", t - 30 * 86400, t + 180 * 86400),
        "visitor 赵敏": issue("赵敏", "visitor", t - 60, t + 4 * 3600, gates=["east", "west"]),
        "expired 陈刚": issue("陈刚", "tenant", t - 2 * year, t - 86400),
        "revoked 刘洋": issue("刘洋", "delivery", t - 86400, t + year),
    }
    revoked_id = passes["revoked 刘洋"].split("|")[0]
    api.post(f"/api/v1/passes/{revoked_id}/revoke", {"reason": "lost phone"})
    return {k: v.split("|", 1)[1] for k, v in passes.items()}


def traffic(gates: dict[str, DemoGate], passes: dict[str, str], stop: threading.Event) -> None:
    """A scripted day at the gates, repeated until stopped."""
    east, west, north = gates["east"], gates["west"], gates["north"]
    script: list[tuple[str, DemoGate, str, float | None]] = [
        ("resident 张三华", east, "normal", 36.6),
        ("visitor 赵敏", west, "visitor", 36.4),
        ("resident 李秀英", north, "normal", None),
        ("expired 陈刚", east, "expired pass", 36.5),
        ("revoked 刘洋", west, "revoked pass", 36.7),
        ("tenant 王建国", east, "FEVER", 38.6),
        ("visitor 赵敏", north, "visitor at a gate not on the pass", None),
        ("resident 李秀英", east, "normal", 36.8),
        ("tenant 王建国", west, "normal", 36.5),
    ]
    round_no = 0
    while not stop.is_set():
        if round_no == 1 and north.proxy is not None:
            say("north gate loses its network link (it keeps deciding offline)")
            north.proxy.cut()
        if round_no == 2 and north.proxy is not None:
            say("north gate's link is back; its journal drains to central")
            north.proxy.restore()
        for who, gate, what, temp in script:
            if stop.wait(2.5):
                return
            thermo = gate.sims.get("thermo")
            if thermo is not None and temp is not None:
                thermo.set_temperature(temp)
            say(f"{gate.name:>5}: {who} ({what})")
            gate.sims["qr"].scan(passes[who])
        round_no += 1


@demo_app.callback(invoke_without_command=True)
def demo(
    http_port: Annotated[
        int | None,
        typer.Option(help=f"Port for central's API (default {DEFAULT_HTTP_PORT}, or a free one)."),
    ] = None,
    admin_password: Annotated[
        str | None, typer.Option(help="Admin password (default: random).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (default: a new temp dir).")
    ] = None,
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds (0: until Ctrl-C).")
    ] = 0,
    embedded_broker: Annotated[bool, typer.Option(help="Use the embedded dev broker.")] = False,
) -> None:
    """Run a broker, central on SQLite, and three simulated gates with scripted traffic."""
    http_port = choose_http_port(http_port)
    root = (data_dir or Path(tempfile.mkdtemp(prefix="menjin-demo-"))).resolve()
    private_dir(root, tighten=True)  # keys, credentials, databases and snapshots live here
    password = admin_password or secrets.token_urlsafe(9)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from protocol.keyfiles import init_key_dir

    if not (root / "keys" / "signing.key").exists():
        init_key_dir(root / "keys")
    broker = DemoBroker(root, force_embedded=embedded_broker)
    broker.start()
    say(f"broker: {broker.kind} on {broker.url}")
    config = write_central_config(root, broker, http_port)
    create_admin(config, password)
    central = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "menjin", "central", "serve", "--config", str(config),
         "--log-level", "WARNING"],
        stdout=(root / "central.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    gates: dict[str, DemoGate] = {}
    try:
        api = DemoApi(f"http://127.0.0.1:{http_port}")
        try:
            api.wait_healthy(alive=lambda: central.poll() is None)
        except StartupError as exc:
            raise StartupError(f"{exc}: {last_line(root / 'central.log')}") from exc
        api.login("admin", password)
        gates = _start_gates(api, root, broker)
        passes = issue_passes(api)
        _banner(http_port, password, root)
        runner = threading.Thread(target=traffic, args=(gates, passes, stop), daemon=True)
        runner.start()
        threading.Thread(target=watch, args=(api, stop), daemon=True).start()
        deadline = time.monotonic() + duration if duration else None
        while not stop.wait(0.5):
            if deadline is not None and time.monotonic() >= deadline:
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        say("stopping...")
        for gate in gates.values():
            gate.stop()
        central.send_signal(signal.SIGTERM)
        try:
            central.wait(15)
        except subprocess.TimeoutExpired:
            central.kill()
        broker.stop()
        say(f"stopped; data kept in {root}")


def choose_http_port(asked: int | None) -> int:
    """The asked port, or 8080, or (when 8080 is taken, e.g. by another demo) a free one."""
    if asked is not None:
        if port_state("127.0.0.1", asked)[0] is not PortState.FREE:
            raise StartupError(
                f"port {asked} on 127.0.0.1 is in use; choose another with --http-port"
            )
        return asked
    if port_state("127.0.0.1", DEFAULT_HTTP_PORT)[0] is PortState.FREE:
        return DEFAULT_HTTP_PORT
    port = free_port()
    say(f"port {DEFAULT_HTTP_PORT} is in use (another demo?); central uses port {port} instead"
        " (choose one with --http-port)")  # fmt: skip
    return port


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else f"nothing in {log}"


def watch(api: DemoApi, stop: threading.Event) -> None:
    """Print what central's live stream shows, as a guard's screen would."""
    while not stop.is_set():
        try:
            for kind, data in api.stream("/api/v1/events/stream", stop):
                say("central: " + describe(kind, data))
        except (OSError, ValueError) as exc:
            if not stop.wait(2):
                say(f"central: stream interrupted ({exc}); reconnecting")


def describe(kind: str, data: dict[str, Any]) -> str:
    where = f"{data.get('gate', '?'):>5}"
    if kind == "alert":
        return f"{where} ALERT {data.get('kind')} (alert #{data.get('id')})"
    if kind == "status":
        return f"{where} is {data.get('state')}"
    etype = data.get("type")
    if etype == "decision":
        verdict = "GRANT" if data.get("granted") else "DENY "
        temp = data.get("temperature_c")
        t = f" {temp:.1f}°C" if isinstance(temp, int | float) else ""
        late = _lateness(data)
        return f"{where} {verdict} {data.get('reason')}{t} seq={data.get('seq')}{late}"
    return f"{where} {etype} {data.get('reason') or ''} seq={data.get('seq')}"


def _lateness(data: dict[str, Any]) -> str:
    try:
        at = datetime.fromisoformat(str(data["at"]))
        got = datetime.fromisoformat(str(data["received_at"]))
    except (KeyError, ValueError):
        return ""
    delay = (got - at).total_seconds()
    return f" (arrived {delay:.0f} s late: stored at the gate while offline)" if delay > 5 else ""


def _start_gates(api: DemoApi, root: Path, broker: DemoBroker) -> dict[str, DemoGate]:
    from menjin.tcp_proxy import CuttableProxy

    gates = {}
    for name in GATES:
        proxy = None
        url = broker.url
        if name == "north":  # its uplink goes through a link the script can cut
            proxy = CuttableProxy("127.0.0.1", broker.port)
            url = f"mqtt://127.0.0.1:{proxy.port}"
        gate = provision_gate(api, root, name, url)
        gate.proxy = proxy
        gate.start(root)
        gates[name] = gate
    return gates


def _banner(port: int, password: str, root: Path) -> None:
    base = f"http://127.0.0.1:{port}"
    typer.echo(
        f"""
menjin demo is running (data: {root}).
  Console:   {base}/   (the guards' screen, in Chinese; English at {base}/?lang=en)
  Log in:    guard / {password}   (duty guard)
             admin / {password}   (administrator; viewer has the same password too)
  API:       {base}/docs

  TOKEN=$(curl -s -X POST {base}/api/v1/auth/token -d username=admin -d password='{password}' \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -N -H "Authorization: Bearer $TOKEN" {base}/api/v1/events/stream
  curl -s -H "Authorization: Bearer $TOKEN" {base}/api/v1/alerts

Ctrl-C stops everything.
"""
    )
