"""The MQTT client both sides build: paho v2 API, MQTT 3.1.1, TLS, no Nagle; nothing connects."""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from typing import ParamSpec
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

AUTH_FAILURES = frozenset({134, 135})  # CONNACK: bad user name or password; not authorized
CALLBACK_ERRORS = "callback_errors"
log = logging.getLogger(__name__)
P = ParamSpec("P")


def guard_callback(
    callback: Callable[P, object], counter: Counter[str], key: str = CALLBACK_ERRORS
) -> Callable[P, None]:
    """A paho callback that logs and counts an exception instead of raising it.

    paho re-raises a callback's exception in its network thread, which then stops: no more
    reads, no reconnects, and nothing says so.
    """
    name = getattr(callback, "__qualname__", repr(callback))

    @functools.wraps(callback)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception:
            counter[key] += 1
            log.exception("MQTT callback %s failed; the client carries on", name)

    return guarded


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
    client.on_socket_open = no_delay
    return client, parsed.hostname or "localhost", parsed.port or (8883 if tls else 1883)


def no_delay(_client: object, _userdata: object, sock: object) -> None:
    """paho `on_socket_open`: send small MQTT packets at once instead of waiting for Nagle.

    Without it a single event waited about 70 ms for delayed ACKs in a measurement here.
    """
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is not None:
        with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
            setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
