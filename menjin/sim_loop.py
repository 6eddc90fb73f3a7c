"""One thread that serves many paho clients and their bridges' sender steps (the simulated fleet).

`loop_start()` gives every client a network thread, and paho's `select()` there cannot watch
a descriptor >= 1,024, so a process of simulated gates held ~120 of them in ~240 threads. This
drives any number of clients from one epoll selector through paho's external-loop API
(`socket()`, `loop_read/loop_write/loop_misc`, the `on_socket_*` callbacks) and runs each
bridge's `MqttBridge.send_step` off a timer heap in the same thread. It implements the bridge's
`NetworkLoop`; the protocol logic stays in the bridge.

paho's `reconnect()` makes a blocking TCP connect (up to `connect_timeout`, 5 s): a node that
drops SYNs rather than refusing them stalls the loop for that long per dial.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)
MISC_EVERY_S = 1.0  # keepalive pings and their timeouts (paho's own loop: every select, <= 1 s)
RETRY_S = 1.0  # after a step failed
Step = Callable[[], float | None]


@dataclass(eq=False)
class _Served:
    """One client on the loop, with its bridge's sender step."""

    client: mqtt.Client
    step: Step
    due: float = 0.0  # when the step next runs (a heap entry with another time is stale)
    dial_at: float | None = None
    queued: bool = False  # woken: in the ready list
    attempts: int = 0  # dials since the last CONNACK, for the backoff
    detached: bool = False
    closed: threading.Event = field(default_factory=threading.Event)


class SharedLoop:
    """Serves clients on one thread; `attach`, `redial` and `detach` are safe from any thread."""

    def __init__(
        self,
        poll_s: float = 1.0,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 30.0,
        name: str = "mqtt-shared-loop",
    ) -> None:
        self.poll_s = poll_s  # a step runs at least this often (subscription retries, etc.)
        self.backoff_min_s, self.backoff_max_s = backoff_min_s, backoff_max_s
        self.dials = 0
        self.step_errors = 0
        self._sel = selectors.DefaultSelector()  # epoll here: no 1,024-descriptor limit
        self._lock = threading.RLock()  # selector registrations, heap, ready list, clients
        self._served: dict[mqtt.Client, _Served] = {}
        self._timers: list[tuple[float, int, _Served, bool]] = []  # (at, n, who, is_dial)
        self._ready: list[_Served] = []
        self._count = itertools.count()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._signalled = False
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the thread; clients still attached are left as they are (their owner closes)."""
        self._stop.set()
        self._signal()
        if self._thread.is_alive():
            self._thread.join(10.0)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def clients(self) -> int:
        return len(self._served)

    # --- NetworkLoop -------------------------------------------------------------------------

    def attach(self, client: mqtt.Client, step: Step) -> Callable[[], None]:
        served = _Served(client, step)
        self._hook(served)
        with self._lock:
            self._served[client] = served
            self._at(served, time.monotonic(), dial=True)
            self._queue(served)
        self._signal()
        return lambda: self._wake(served)

    def redial(self, client: mqtt.Client, pause_s: float) -> None:
        with self._lock:
            served = self._served.get(client)
            if served is None or served.detached:
                return
            backoff = min(self.backoff_max_s, self.backoff_min_s * 2.0 ** min(served.attempts, 16))
            self._at(served, time.monotonic() + pause_s + backoff, dial=True)
        self._signal()

    def detach(self, client: mqtt.Client) -> None:
        with self._lock:
            served = self._served.get(client)
            if served is None:
                return
            served.detached = True
        if client.socket() is not None and threading.current_thread() is not self._thread:
            served.closed.wait(2.0)  # the loop writes the DISCONNECT, then paho closes
        with self._lock:
            self._served.pop(client, None)
            sock = client.socket()
            if sock is not None:
                self._forget(sock)

    # --- paho's external-loop callbacks (any thread: a publish registers for writing) ---------

    def _hook(self, served: _Served) -> None:
        client = served.client
        opened = client.on_socket_open  # make_client's no_delay

        def on_open(c: mqtt.Client, userdata: Any, sock: Any) -> None:
            if opened is not None:
                opened(c, userdata, sock)
            served.closed.clear()
            self._interest(sock, selectors.EVENT_READ, served)

        def on_close(_c: mqtt.Client, _userdata: Any, sock: Any) -> None:
            self._forget(sock)
            served.closed.set()

        def on_write(_c: mqtt.Client, _userdata: Any, sock: Any) -> None:
            self._interest(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, served)

        def on_no_write(_c: mqtt.Client, _userdata: Any, sock: Any) -> None:
            self._interest(sock, selectors.EVENT_READ, served)

        client.on_socket_open = on_open
        client.on_socket_close = on_close
        client.on_socket_register_write = on_write
        client.on_socket_unregister_write = on_no_write

    def _interest(self, sock: Any, events: int, served: _Served) -> None:
        # epoll_ctl from another thread takes effect in a running epoll_wait: no wake needed.
        with self._lock:
            try:
                self._sel.modify(sock, events, served)
            except KeyError:
                self._sel.register(sock, events, served)

    def _forget(self, sock: Any) -> None:
        with self._lock, contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(sock)

    # --- scheduling ---------------------------------------------------------------------------

    def _at(self, served: _Served, when: float, dial: bool) -> None:
        if dial:
            served.dial_at = when
        else:
            served.due = when
        heapq.heappush(self._timers, (when, next(self._count), served, dial))

    def _queue(self, served: _Served) -> None:
        if not served.queued:
            served.queued = True
            self._ready.append(served)

    def _wake(self, served: _Served) -> None:
        with self._lock:
            self._queue(served)
        if threading.current_thread() is not self._thread:
            self._signal()

    def _signal(self) -> None:
        with self._lock:
            if self._signalled:
                return
            self._signalled = True
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"x")

    def _timeout(self) -> float:
        with self._lock:
            if self._ready:
                return 0.0
            if not self._timers:
                return MISC_EVERY_S
            return max(0.0, min(MISC_EVERY_S, self._timers[0][0] - time.monotonic()))

    def _take_due(self, now: float) -> tuple[list[_Served], list[_Served]]:
        """Steps to run (woken or due) and clients to dial, in the order they came."""
        with self._lock:
            steps, self._ready = self._ready, []
            dials = []
            while self._timers and self._timers[0][0] <= now:
                at, _n, served, dial = heapq.heappop(self._timers)
                if dial and served.dial_at == at:
                    served.dial_at = None
                    dials.append(served)
                elif not dial and served.due == at and not served.queued:
                    served.queued = True
                    steps.append(served)
            for served in steps:
                served.queued = False
        return steps, dials

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        next_misc = time.monotonic() + MISC_EVERY_S
        while not self._stop.is_set():
            for key, mask in self._sel.select(self._timeout()):
                if key.data is None:
                    self._drain_wake()
                else:
                    self._serve_io(key.data, key.fileobj, mask)
            now = time.monotonic()
            steps, dials = self._take_due(now)
            for served in dials:
                self._dial(served)
            for served in steps:
                self._step(served, now)
            if now >= next_misc:
                next_misc = now + MISC_EVERY_S
                self._misc()

    def _drain_wake(self) -> None:
        with self._lock:
            self._signalled = False
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def _serve_io(self, served: _Served, sock: Any, mask: int) -> None:
        client = served.client
        try:
            if mask & selectors.EVENT_READ and client.socket() is sock:
                client.loop_read()
                if served.attempts and client.is_connected():
                    served.attempts = 0  # paho resets its backoff on CONNACK too
            if mask & selectors.EVENT_WRITE and client.socket() is sock:
                client.loop_write()
        except Exception:
            log.exception("serving an MQTT client failed")

    def _dial(self, served: _Served) -> None:
        if served.detached:
            return
        client = served.client
        served.attempts += 1
        self.dials += 1
        try:
            client.reconnect()
        except Exception as exc:
            log.debug("MQTT connect failed: %s", exc)
            # What loop_forever does: on_connect_fail, whose owner (MqttBridge._fail_over)
            # picks the next node and calls redial(); a client without one is retried as is.
            failed = client.on_connect_fail
            if failed is None:
                self.redial(client, 0.0)
            else:
                failed(client, client.user_data_get())

    def _step(self, served: _Served, now: float) -> None:
        if served.detached:
            return
        try:
            delay = served.step()
        except Exception:
            log.exception("sender step failed")
            delay = None
        if delay is None:
            self.step_errors += 1
            delay = RETRY_S
        with self._lock:
            self._at(served, now + min(delay, self.poll_s), dial=False)

    def _misc(self) -> None:
        with self._lock:
            clients = [s.client for s in self._served.values() if not s.detached]
        for client in clients:
            try:
                client.loop_misc()
            except Exception:
                log.exception("MQTT keepalive check failed")
