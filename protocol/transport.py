"""Transport conventions both sides share (no connections are made here)."""

from __future__ import annotations

import contextlib
import socket


def no_delay(_client: object, _userdata: object, sock: object) -> None:
    """paho `on_socket_open`: send small MQTT packets at once instead of waiting for Nagle.

    Without it a single event waited about 70 ms for delayed ACKs in a measurement here.
    """
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is not None:
        with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
            setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
