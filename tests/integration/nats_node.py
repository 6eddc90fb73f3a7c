"""One nats-server with JetStream and its MQTT listener, on free loopback ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import skip_or_fail
from tests.integration.services import free_port


class NatsNode:
    """NATS's MQTT 3.1.1 listener needs a server_name and JetStream (its sessions live there)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(binary).exists():
            skip_or_fail("nats-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.mqtt_port = free_port()
        self.log = workdir / "nats.log"
        self.conf = workdir / "nats.conf"
        self.conf.write_text(
            f'server_name: "n1"\nlisten: "127.0.0.1:{self.port}"\n'
            f'jetstream {{ store_dir: "{workdir / "js"}" }}\n'
            f'mqtt {{ listen: "127.0.0.1:{self.mqtt_port}" }}\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nats-server's MQTT listener did not open")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
