"""Users, argon2 passwords, opaque bearer tokens (revocable, expiring), API keys.

Tokens and API keys are random strings; only their SHA-256 is stored, so a database leak does
not leak a usable credential, and every replica checks them the same way. How often a login may
be tried is central/login_limits.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, func, select, update

from central.login_limits import clear_throttle
from central.store.tables import api_keys, sessions, users
from central.views import aware

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("menjin-no-such-user")
API_KEY_PREFIX = "mjk_"
MIN_PASSWORD = 8
T = TypeVar("T")


class Role(StrEnum):
    ADMIN = "admin"
    GUARD = "guard"
    VIEWER = "viewer"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (by token) or an API key."""

    name: str
    role: Role
    token_hash: str | None = None
    api_key_id: int | None = None


class UserExistsError(Exception):
    """A user with that name already exists."""


class NoSuchUserError(Exception):
    """No user has that name."""


class LastAdminError(Exception):
    """The change would leave no enabled admin."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password must be at least {MIN_PASSWORD} characters")


# --- bounded password hashing ------------------------------------------------------------------


class HashBusyError(Exception):
    """Every hash worker is busy and the queue is full: the caller should answer 503."""


class HashGate:
    """At most `workers` argon2 computations at once (each takes ~64 MiB and a core), and at
    most `queue` more waiting; beyond that callers are refused at once instead of piling up.

    Waiters wait on the event loop, not in threads, so a login flood holds no thread that other
    requests need.
    """

    def __init__(self, workers: int = 0, queue: int = 32) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.queue = queue
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self._admitted = 0  # touched only on the event loop
        self.refused = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._admitted >= self.workers + self.queue:
            self.refused += 1
            raise HashBusyError("too many logins at once; try again shortly")
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; an unknown user (None) costs the same time."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# --- users -------------------------------------------------------------------------------------


def create_user(conn: Connection, username: str, password: str, role: Role, now: datetime) -> int:
    if conn.execute(select(users.c.id).where(users.c.username == username)).first():
        raise UserExistsError(f"user {username!r} already exists")
    _check_password(password)
    result = conn.execute(
        users.insert().values(
            username=username, password_hash=_hasher.hash(password), role=role.value,
            created_at=now, disabled=False,
        )
    )  # fmt: skip
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def find_user(conn: Connection, username: str) -> Row[Any] | None:
    return conn.execute(select(users).where(users.c.username == username)).first()


def list_users(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(select(users).order_by(users.c.username)))


def _user_id(conn: Connection, username: str) -> int:
    user_id = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
    if user_id is None:
        raise NoSuchUserError(f"no user {username!r}")
    return int(user_id)


def end_sessions(conn: Connection, username: str) -> int:
    """Revoke every live token of the user; returns how many were live."""
    user_id = _user_id(conn, username)
    done = conn.execute(
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked.is_(False))
        .values(revoked=True)
    )
    return int(done.rowcount)


def set_disabled(conn: Connection, username: str, disabled: bool) -> int:
    """Disable (ending every session; returns how many) or enable a user."""
    user_id = _user_id(conn, username)
    if disabled:
        others = conn.execute(
            select(func.count())
            .select_from(users)
            .where(users.c.role == Role.ADMIN.value, users.c.disabled.is_(False))
            .where(users.c.id != user_id)
        ).scalar_one()
        role = conn.execute(select(users.c.role).where(users.c.id == user_id)).scalar_one()
        if role == Role.ADMIN.value and int(others) == 0:
            raise LastAdminError("that would leave no enabled admin")
    conn.execute(update(users).where(users.c.id == user_id).values(disabled=disabled))
    clear_throttle(conn, username)
    return end_sessions(conn, username) if disabled else 0


def set_password(conn: Connection, username: str, password: str) -> bool:
    """A new password; every session of the user ends and its login back-off is cleared."""
    _check_password(password)
    done = conn.execute(
        update(users)
        .where(users.c.username == username)
        .values(password_hash=_hasher.hash(password))
    )
    if done.rowcount != 1:
        return False
    end_sessions(conn, username)
    clear_throttle(conn, username)
    return True


# --- tokens ------------------------------------------------------------------------------------


def issue_token(conn: Connection, username: str, ttl: timedelta, now: datetime) -> str:
    user_id = _user_id(conn, username)
    token = secrets.token_urlsafe(32)
    conn.execute(
        sessions.insert().values(
            token_hash=_digest(token), user_id=user_id, issued_at=now, expires_at=now + ttl,
            revoked=False,
        )
    )  # fmt: skip
    return token


def principal_for_token(conn: Connection, token: str, now: datetime) -> Principal | None:
    digest = _digest(token)
    row = conn.execute(
        select(
            users.c.username,
            users.c.role,
            users.c.disabled,
            sessions.c.expires_at,
            sessions.c.revoked,
        )
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.token_hash == digest)
    ).first()
    if row is None or row.revoked or row.disabled or aware(row.expires_at) <= now:
        return None
    return Principal(row.username, Role(row.role), token_hash=digest)


def revoke_token(conn: Connection, token_hash: str) -> None:
    conn.execute(update(sessions).where(sessions.c.token_hash == token_hash).values(revoked=True))


# --- API keys ----------------------------------------------------------------------------------


def create_api_key(
    conn: Connection,
    name: str,
    role: Role,
    created_by: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> tuple[int, str]:
    if expires_at is not None and expires_at <= now:
        raise ValueError("expires_at must lie in the future")
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    result = conn.execute(
        api_keys.insert().values(
            name=name, key_hash=_digest(key), role=role.value, created_by=created_by,
            created_at=now, revoked=False, expires_at=expires_at,
        )
    )  # fmt: skip
    return int(result.inserted_primary_key[0]), key  # type: ignore[index]


def list_api_keys(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(select(api_keys).order_by(api_keys.c.id)))


def principal_for_api_key(conn: Connection, key: str, now: datetime) -> Principal | None:
    row = conn.execute(select(api_keys).where(api_keys.c.key_hash == _digest(key))).first()
    if row is None or row.revoked:
        return None
    if row.expires_at is not None and aware(row.expires_at) <= now:
        return None
    return Principal(f"api-key:{row.name}", Role(row.role), api_key_id=row.id)


def revoke_api_key(conn: Connection, key_id: int) -> bool:
    done = conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked=True))
    return done.rowcount == 1
