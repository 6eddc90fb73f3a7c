"""Mosquitto credentials and ACL lines for gates and central, without needing mosquitto_passwd."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from protocol import topics
from protocol.fsmodes import write_private
from protocol.topics import GateTopic

ITERATIONS = 101  # what mosquitto_passwd writes for its "$7$" (PBKDF2-SHA512) format


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A mosquitto password-file hash ($7$ = PBKDF2-SHA512)."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


GATE_PREFIX = "gate/"


class BrokerUserError(ValueError):
    """A broker user name that is invalid, or taken by another user."""


def gate_username(site: str, gate: str) -> str:
    """`gate/{site}/{gate}`: ids cannot hold '/', so two gates never share a user name.

    (The old `gate.{site}.{gate}` gave `x.y`/`z` and `x`/`y.z` the same name.)
    """
    if not (topics.valid_id(site) and topics.valid_id(gate)):
        raise BrokerUserError(f"invalid site or gate id {site!r}/{gate!r}")
    return f"{GATE_PREFIX}{site}/{gate}"


def legacy_gate_username(site: str, gate: str) -> str:
    """The user name gate-add wrote before the injective scheme; only `migrate` uses it."""
    return f"gate.{site}.{gate}"


def check_central_username(username: str) -> None:
    """Central's user must not be a possible gate user, nor break the password file."""
    if not username or username.startswith(GATE_PREFIX) or any(c in username for c in ": \t\n"):
        raise BrokerUserError(f"{username!r} cannot be central's broker user name")


def new_password() -> str:
    return secrets.token_urlsafe(18)


def gate_acl(site: str, gate: str) -> str:
    """The ACL block that lets a gate write only its own topics and read only its own replies."""
    own = [
        ("write", GateTopic.EVENTS),
        ("write", GateTopic.STATUS),
        ("write", GateTopic.SYNC_REQUEST),
        ("write", GateTopic.SNAPSHOT),
        ("write", GateTopic.POLICY_REQUEST),
        ("read", GateTopic.POLICY),
        ("read", GateTopic.ACK),
        ("read", GateTopic.CMD),
        ("read", GateTopic.DELTA),
    ]
    lines = [f"user {gate_username(site, gate)}"]
    lines += [f"topic {access} {topics.gate_topic(site, gate, kind)}" for access, kind in own]
    lines += [
        f"topic read {topics.sync_topic(site)}",
        f"topic read {topics.central_status_topic()}",
    ]
    return "\n".join(lines) + "\n"


def central_acl(username: str) -> str:
    return f"user {username}\ntopic readwrite {topics.PREFIX}/#\ntopic read $share/#\n"


def add_user(passwd_file: Path, username: str, password: str) -> None:
    """Add or replace a user in a mosquitto password file."""
    lines = []
    if passwd_file.exists():
        lines = [
            line
            for line in passwd_file.read_text().splitlines()
            if line and not line.startswith(f"{username}:")
        ]
    lines.append(f"{username}:{hash_password(password)}")
    write_private(passwd_file, "\n".join(lines) + "\n")


def add_acl(acl_file: Path, block: str) -> None:
    """Append an ACL block unless the same user already has one."""
    first = block.splitlines()[0]
    existing = acl_file.read_text() if acl_file.exists() else ""
    if first in existing.splitlines():
        return
    write_private(
        acl_file,
        existing + ("\n" if existing and not existing.endswith("\n") else "") + "\n" + block,
    )


def users(passwd_file: Path) -> dict[str, str]:
    """User name -> hash, in file order, of a mosquitto password file (empty if none)."""
    if not passwd_file.exists():
        return {}
    pairs = (line.split(":", 1) for line in passwd_file.read_text().splitlines() if ":" in line)
    return {name: digest for name, digest in pairs}


def refuse_taken(passwd_file: Path, username: str) -> None:
    """Raise unless `username` is free: replacing a password must be asked for (rotation)."""
    if username in users(passwd_file):
        raise BrokerUserError(
            f"{username} already has a password in {passwd_file}; pass --rotate to replace it"
        )
