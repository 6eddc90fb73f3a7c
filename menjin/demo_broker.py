"""The demo's broker: a private Mosquitto when installed, else an embedded one for dev only."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"broker did not listen on port {port}")


class DemoBroker:
    """Start with `start()`; `kind` says which broker it is; `shared` whether $share works."""

    def __init__(self, data_dir: Path, force_embedded: bool = False) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.binary = None if force_embedded else shutil.which("mosquitto")
        self.kind = "mosquitto" if self.binary else "embedded (amqtt, dev only)"
        self.shared = self.binary is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.binary is not None:
            conf = self.data_dir / "mosquitto.conf"
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_queued_messages 0\nset_tcp_nodelay true\n"
            )
            self._proc = subprocess.Popen(  # noqa: S603
                [self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        else:
            self._start_embedded()
        _wait_listening(self.port)

    def _start_embedded(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}}}
        broker = Broker(config, loop=loop)

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(broker.start())
            loop.run_forever()

        threading.Thread(target=run, name="embedded-broker", daemon=True).start()
        self._loop = loop

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
