"""The MQTT client both sides build: paho v2 API, MQTT 3.1.1, TLS, no Nagle; nothing connects.

Also `Endpoints`, the broker URL list both sides fail over along (gate and central replica).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

P = ParamSpec("P")
log = logging.getLogger(__name__)

AUTH_FAILURES = frozenset({134, 135})  # CONNACK: bad user name or password; not authorized


def make_client(
    url: str,
    client_id: str,
    *,
    username: str = "",
    password: str = "",
    ca_file: str = "",
    max_delay: int = 30,
) -> tuple[mqtt.Client, str, int]:
    """A configured, unconnected client for mqtt:// or mqtts:// URLs; returns host and port."""
    parsed = urlparse(url)
    tls = parsed.scheme == "mqtts"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if username:
        client.username_pw_set(username, password or None)
    if tls:
        client.tls_set(ca_certs=ca_file or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=1, max_delay=max_delay)
    client.on_socket_open = guard_callback(no_delay)
    return client, parsed.hostname or "localhost", parsed.port or (8883 if tls else 1883)


def no_delay(_client: object, _userdata: object, sock: object) -> None:
    """paho `on_socket_open`: send small MQTT packets at once instead of waiting for Nagle.

    Without it a single event waited about 70 ms for delayed ACKs in a measurement here.
    """
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is not None:
        with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
            setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def guard_callback(
    callback: Callable[P, object], on_error: Callable[[BaseException], None] | None = None
) -> Callable[P, None]:
    """Wrap a paho callback so an exception is logged and reported instead of raised.

    paho re-raises what a callback raises and its network thread then ends: no more
    reconnects, no error anyone sees. on_error (e.g. a counter) hears of each one.
    """
    name = getattr(callback, "__qualname__", repr(callback))

    @functools.wraps(callback)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception as exc:
            log.exception("MQTT callback %s failed; the client carries on", name)
            if on_error is None:
                return
            try:
                on_error(exc)
            except Exception:
                log.exception("error hook of MQTT callback %s failed", name)

    return guarded


@dataclass
class Endpoints:
    """The broker URLs of one client, in the order it prefers them, and where it is now."""

    urls: list[str]
    jitter_s: float = 2.0
    rng: Callable[[], float] = random.random
    index: int = 0
    failovers: int = 0

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("no broker URL")

    @property
    def current(self) -> tuple[str, int]:
        parsed = urlparse(self.urls[self.index])
        tls = parsed.scheme == "mqtts"
        return parsed.hostname or "localhost", parsed.port or (8883 if tls else 1883)

    def advance(self) -> tuple[str, int]:
        """Move to the next URL (a lost or refused link); the same one when there is only one."""
        if len(self.urls) > 1:
            self.index = (self.index + 1) % len(self.urls)
            self.failovers += 1
        return self.current

    def pause_s(self) -> float:
        """How long to hold before the next attempt, on top of paho's own backoff."""
        return self.rng() * self.jitter_s
