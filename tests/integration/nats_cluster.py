"""A 3-node NATS cluster on loopback with MQTT listeners and JetStream, killable per node."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import skip_or_fail
from tests.integration.services import free_port

BINARY = "/usr/sbin/nats-server"
# Streams R3 explicitly: created while a node is down NATS would pick R2, which loses its quorum
# (and every MQTT session) with the next node that dies. Consumers R1 in memory: each QoS 1
# subscription is a JetStream consumer, and as R3 Raft groups 150 gates x 5 subscriptions
# timed out on creation for minutes on 2 cores; a clean session's consumer dies with it anyway.
MQTT_TUNING = "stream_replicas: {}, consumer_replicas: 1, consumer_memory_storage: true"


def _quoted(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid NATS config string


def mqtt_round_trip(port: int, user: str, password: str, timeout: float = 5.0) -> bool:
    """Subscribe at QoS 1 and hear our own publish: the node's MQTT (and JetStream) works."""
    topic = f"probe/{uuid.uuid4().hex}"
    heard, granted = threading.Event(), threading.Event()
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    c.username_pw_set(user, password)
    c.on_message = lambda *_: heard.set()
    c.on_subscribe = lambda _c, _u, _m, codes, _p: (
        granted.set() if all(not rc.is_failure for rc in codes) else None
    )
    try:
        c.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return False
    c.loop_start()
    try:
        c.subscribe(topic, qos=1)
        if not granted.wait(timeout):
            return False
        c.publish(topic, b"x", qos=1)
        return heard.wait(timeout)
    finally:
        c.disconnect()
        c.loop_stop()


class NatsNode:
    """One nats-server of the cluster: client, route and MQTT ports of its own."""

    def __init__(self, cluster: NatsCluster, index: int) -> None:
        self.cluster = cluster
        self.name = f"n{index}"
        self.client_port, self.route_port, self.mqtt_port = free_port(), free_port(), free_port()
        self.store = cluster.workdir / f"js-{self.name}"
        self.conf = cluster.workdir / f"{self.name}.conf"
        self.log = cluster.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def render(self) -> str:
        routes = ", ".join(
            f"nats-route://127.0.0.1:{n.route_port}" for n in self.cluster.nodes if n is not self
        )
        users = "\n".join(self.cluster.user_entry(u) for u in self.cluster.users)
        cluster = (
            f"cluster {{ name: {self.cluster.name}, listen: 127.0.0.1:{self.route_port},"
            f" routes: [{routes}] }}\n"
            if routes
            else ""  # a single node: JetStream refuses a cluster block without routes
        )
        replicas = min(3, len(self.cluster.nodes))
        return (
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"log_file: {_quoted(str(self.log))}\n"
            f"jetstream {{ store_dir: {_quoted(str(self.store))} }}\n"
            + cluster
            + f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port}, {MQTT_TUNING.format(replicas)} }}\n"
            f"authorization {{\n  users = [\n{users}\n  ]\n}}\n"
        )

    def start(self) -> None:
        self.conf.write_text(self.render())
        self.proc = subprocess.Popen(
            [BINARY, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited: {self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"nats-server {self.name} did not open its MQTT port: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL this node; its JetStream store stays for a restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """SIGKILL and start again with the current users, keeping the JetStream store."""
        self.kill()
        self.start()
        self.wait_listening()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"


class NatsCluster:
    """Three nodes routed to each other; users are MQTT user names with plain passwords."""

    def __init__(self, workdir: Path, users: dict[str, str], size: int = 3) -> None:
        if shutil.which(BINARY) is None:
            skip_or_fail(f"{BINARY} is missing (apt-get install nats-server)")
        self.workdir = workdir
        self.users = dict(users)
        # A name of its own: a killed node's route port may be taken by another test session's
        # node, and routes between two clusters of the same name merge them (seen: streams "R4").
        self.name = f"menjin-{uuid.uuid4().hex[:12]}"
        self.denied: dict[str, list[str]] = {}  # user -> NATS subjects it may not subscribe to
        self.nodes: list[NatsNode] = []
        self.nodes = [NatsNode(self, i) for i in range(1, size + 1)]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_listening()
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until an MQTT client can subscribe on every node (JetStream has a meta leader)."""
        user, password = next(iter(self.users.items()))
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.proc is None:
                continue
            while not mqtt_round_trip(node.mqtt_port, user, password):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster not ready for MQTT on {node.name}: {node.tail()}")
                time.sleep(0.5)

    def user_entry(self, user: str) -> str:
        entry = f"user: {_quoted(user)}, password: {_quoted(self.users[user])}"
        if self.denied.get(user):
            subjects = ", ".join(_quoted(s) for s in self.denied[user])
            entry += f", permissions: {{subscribe: {{deny: [{subjects}]}}}}"
        return f"    {{{entry}}}"

    def deny_subscribe(self, user: str, subjects: list[str]) -> None:
        """Refuse these subscriptions to a user (NATS answers SUBACK 0x80); [] lifts it.

        Takes effect at the next start of a node: nats-server 2.9.10, sent SIGHUP with MQTT
        clients connected, dropped them all and stopped answering (seen here, every time).
        """
        self.denied[user] = subjects

    def restart_empty(self) -> None:
        """Every node down, every JetStream store gone, every node up: a broker with no memory."""
        for node in self.nodes:
            node.kill()
        for node in self.nodes:
            shutil.rmtree(node.store, ignore_errors=True)
        self.start()

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
            node.proc = None
