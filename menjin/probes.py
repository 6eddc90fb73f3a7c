"""Network probes both checks use (TCP reach, TLS, CONNACK, a free port) and the broker lines.

Each returns a typed outcome instead of raising, so a check can say exactly what failed. It
lives in menjin/ because it does I/O (protocol/ does none) and edge/ and central/ both use it.
"""

from __future__ import annotations

import errno
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from protocol.check_report import FAIL, OK, SKIP, WARN, CheckLine, Param
from protocol.transport import AUTH_FAILURES


class Reach(StrEnum):
    OK = "ok"
    DNS = "dns"  # the host name does not resolve
    REFUSED = "refused"  # resolved, but nothing listens on the port
    TIMEOUT = "timeout"  # no answer at all: firewall, no route, 4G not up
    ERROR = "error"


@dataclass(frozen=True)
class ReachResult:
    outcome: Reach
    error: str = ""


def tcp_reach(host: str, port: int, timeout: float) -> ReachResult:
    """Open and close one TCP connection."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return ReachResult(Reach.DNS, str(exc))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ReachResult(Reach.OK)
    except ConnectionRefusedError as exc:
        return ReachResult(Reach.REFUSED, str(exc))
    except TimeoutError as exc:
        return ReachResult(Reach.TIMEOUT, str(exc) or "timed out")
    except OSError as exc:
        return ReachResult(Reach.ERROR, exc.strerror or str(exc))


class Tls(StrEnum):
    OK = "ok"
    VERIFY = "verify"  # the certificate chain or the host name did not verify
    ERROR = "error"  # no TLS spoken at all, or the handshake broke


@dataclass(frozen=True)
class TlsResult:
    outcome: Tls
    error: str = ""


def tls_verify(host: str, port: int, ca_file: str, timeout: float) -> TlsResult:
    """Handshake as paho will (system CAs or ca_file, host name checked), then close."""
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        return TlsResult(Tls.ERROR, f"cannot load CA file {ca_file}: {exc}")
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return TlsResult(Tls.OK)
    except ssl.SSLCertVerificationError as exc:
        return TlsResult(Tls.VERIFY, exc.verify_message or str(exc))
    except (OSError, ssl.SSLError) as exc:
        return TlsResult(Tls.ERROR, str(exc))


class Connack(StrEnum):
    ACCEPTED = "accepted"
    REFUSED_AUTH = "refused_auth"  # bad user name or password, or not authorized
    REFUSED = "refused"  # any other CONNACK failure
    NO_ANSWER = "no_answer"  # no CONNACK within the timeout
    ERROR = "error"  # the connection itself failed


@dataclass
class BrokerSession:
    """One short MQTT connection for a check: the CONNACK, then messages on chosen topics."""

    client: mqtt.Client
    host: str
    port: int
    outcome: Connack | None = None
    reason: str = ""
    messages: list[tuple[str, bytes, bool, float]] = field(default_factory=list)
    _answered: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def connect(self, keepalive: int, timeout: float) -> Connack:
        """Connect and wait for the CONNACK; the outcome is kept in `outcome` and `reason`."""
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        try:
            self.client.connect(self.host, self.port, keepalive=keepalive)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.outcome, self.reason = Connack.ERROR, str(exc)
            return self.outcome
        self.client.loop_start()
        if not self._answered.wait(timeout):
            self.outcome, self.reason = Connack.NO_ANSWER, f"no CONNACK in {timeout:.0f} s"
        assert self.outcome is not None
        return self.outcome

    def collect(self, topic: str, timeout: float, until_live: bool = True) -> None:
        """Subscribe and gather messages until a live (not retained) one came, or timeout."""
        self.client.subscribe(topic, qos=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if until_live and any(not retained for _, _, retained, _ in self.messages):
                    return
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if not reason.is_failure:
            self.outcome = Connack.ACCEPTED
        elif reason.value in AUTH_FAILURES:
            self.outcome = Connack.REFUSED_AUTH
        else:
            self.outcome = Connack.REFUSED
        self.reason = str(reason)
        self._answered.set()
        if reason.is_failure:
            self.client.disconnect()  # paho would retry refused credentials for ever

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), time.time()))


class PortState(StrEnum):
    FREE = "free"
    IN_USE = "in_use"
    DENIED = "denied"  # a privileged port without the right to bind it
    ERROR = "error"


def port_state(host: str, port: int) -> tuple[PortState, str]:
    """Try to bind host:port the way uvicorn will (SO_REUSEADDR), then let it go."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return PortState.IN_USE, str(exc)
        if exc.errno == errno.EACCES:
            return PortState.DENIED, str(exc)
        return PortState.ERROR, str(exc)
    return PortState.FREE, ""


def broker_lines(
    made: tuple[mqtt.Client, str, int],
    url: str,
    ca_file: str,
    username: str,
    timeout: float,
    refused_hint: str,
) -> tuple[list[CheckLine], BrokerSession | None]:
    """Reach, TLS and CONNACK lines for one broker; the session stays open when accepted.

    `made` is what the side's own make_client returned: the client, its host and port.
    """
    client, host, port = made
    tls = urlparse(url).scheme == "mqtts"
    params: dict[str, Param] = {"host": host, "port": port, "url": url, "timeout": timeout,
                                "user": username or "-", "ca_file": ca_file or "-"}  # fmt: skip
    reach = tcp_reach(host, port, timeout)
    params["error"] = reach.error
    if reach.outcome is not Reach.OK:
        key = f"reach.{reach.outcome.value}"
        blocked = [CheckLine(c, SKIP, "blocked") for c in ("mqtt.tls", "mqtt.auth")]
        return [CheckLine("mqtt.reach", FAIL, key, params, key), *blocked], None
    lines = [CheckLine("mqtt.reach", OK, "reach.ok", params)]
    if tls:
        verified = tls_verify(host, port, ca_file, timeout)
        params["error"] = verified.error
        if verified.outcome is not Tls.OK:
            key = f"tls.{verified.outcome.value}"
            lines.append(CheckLine("mqtt.tls", FAIL, key, params, key))
            return [*lines, CheckLine("mqtt.auth", SKIP, "blocked")], None
        lines.append(CheckLine("mqtt.tls", OK, "tls.ok", params))
    else:
        lines.append(CheckLine("mqtt.tls", WARN, "tls.plain", params, "tls.plain"))
    session = BrokerSession(client, host, port)
    outcome = session.connect(keepalive=30, timeout=timeout)
    params["reason"] = session.reason
    if outcome is Connack.ACCEPTED:
        return [*lines, CheckLine("mqtt.auth", OK, "auth.ok", params)], session
    session.close()
    hint = refused_hint if outcome is Connack.REFUSED_AUTH else f"auth.{outcome.value}"
    return [*lines, CheckLine("mqtt.auth", FAIL, f"auth.{outcome.value}", params, hint)], None
