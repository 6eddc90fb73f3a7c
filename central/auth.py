"""Users, argon2 passwords, opaque bearer tokens (revocable, expiring), API keys, login limits.

Tokens and API keys are random strings; only their SHA-256 is stored, so a database leak does
not leak a usable credential, and every replica checks them the same way.

Login limiting keeps one row per user name and one per client address (`login_throttle`). An
attempt is counted *before* its password is checked, with a compare-and-set, so parallel
attempts cannot slip past the count; a right password refunds it. Past the free failures each
further one doubles the wait before the next attempt (capped), so a user name under attack
stays usable to its owner after the wait, and nobody can wall an account off for good.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, Row, and_, case, delete, func, or_, select, update

from central.store.db import insert_ignore
from central.store.tables import api_keys, login_throttle, sessions, users

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("menjin-no-such-user")
API_KEY_PREFIX = "mjk_"
MIN_PASSWORD = 8
KEY_CHARS = 80  # the throttle table's key column: longer names and addresses are truncated
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
    if row is None or row.revoked or row.disabled or _aware(row.expires_at) <= now:
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
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        return None
    return Principal(f"api-key:{row.name}", Role(row.role), api_key_id=row.id)


def revoke_api_key(conn: Connection, key_id: int) -> bool:
    done = conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked=True))
    return done.rowcount == 1


# --- login back-off ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginPolicy:
    free_per_user: int = 5
    free_per_address: int = 20
    backoff_s: float = 1.0
    backoff_max_s: float = 300.0
    reset_s: float = 900.0

    def delay(self, failures: int, free: int) -> float | None:
        """The wait after `failures` counted attempts, None while still free."""
        if failures < free:
            return None
        return min(self.backoff_max_s, self.backoff_s * 2.0 ** min(failures - free, 60))


class _RacedError(Exception):
    pass


def _keys(username: str, remote: str, policy: LoginPolicy) -> list[tuple[str, str, int]]:
    return [
        ("addr", remote[:KEY_CHARS], policy.free_per_address),
        ("user", username[:KEY_CHARS], policy.free_per_user),
    ]


def reserve_login(
    engine: Engine, username: str, remote: str, now: datetime, policy: LoginPolicy
) -> float | None:
    """Count one attempt for the user name and the address; the seconds to wait instead when
    either is in back-off. Atomic: concurrent attempts each see the count the other left."""
    keys = _keys(username, remote, policy)
    where = or_(*(and_(login_throttle.c.scope == s, login_throttle.c.key == k) for s, k, _ in keys))
    for _ in range(50):
        with engine.connect() as conn:
            rows = {(r.scope, r.key): r for r in conn.execute(select(login_throttle).where(where))}
        waits = [
            (_aware(r.blocked_until) - now).total_seconds()
            for r in rows.values()
            if r.blocked_until is not None and _aware(r.blocked_until) > now
        ]
        if waits:
            return max(waits)
        try:
            # The transaction's first statement writes, so SQLite takes its write lock at once.
            with engine.begin() as conn:
                for scope, key, free in keys:
                    _count(conn, scope, key, free, rows.get((scope, key)), now, policy)
                conn.execute(
                    delete(login_throttle).where(
                        login_throttle.c.last_at < now - timedelta(seconds=policy.reset_s),
                        or_(
                            login_throttle.c.blocked_until.is_(None),
                            login_throttle.c.blocked_until < now,
                        ),
                    )
                )
            return None
        except _RacedError:
            continue  # another attempt changed a row between our read and write: read again
    return policy.backoff_s


def _count(
    conn: Connection,
    scope: str,
    key: str,
    free: int,
    row: Row[Any] | None,
    now: datetime,
    policy: LoginPolicy,
) -> None:
    stale = row is None or _aware(row.last_at) <= now - timedelta(seconds=policy.reset_s)
    failures = 1 if stale or row is None else int(row.failures) + 1
    delay = policy.delay(failures, free)
    values = {
        "failures": failures,
        "last_at": now,
        "blocked_until": None if delay is None else now + timedelta(seconds=delay),
    }
    if row is None:
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
        stmt: Any = (
            insert_ignore(conn.dialect.name, login_throttle)
            .values(scope=scope, key=key, **values)
            .returning(login_throttle.c.key)
        )
    else:
        stmt = (
            update(login_throttle)
            .where(login_throttle.c.scope == scope, login_throttle.c.key == key)
            .where(login_throttle.c.failures == row.failures)
            .where(login_throttle.c.last_at == row.last_at)
            .values(values)
            .returning(login_throttle.c.key)
        )
    if conn.execute(stmt).first() is None:
        raise _RacedError


def refund_login(
    engine: Engine, username: str, remote: str, policy: LoginPolicy, *, success: bool
) -> None:
    """Give back an attempt that was not a wrong password; a right one clears the user name."""
    with engine.begin() as conn:
        for scope, key, free in _keys(username, remote, policy):
            row = login_throttle.c
            if scope == "user" and success:
                conn.execute(delete(login_throttle).where(row.scope == scope, row.key == key))
                continue
            conn.execute(
                update(login_throttle)
                .where(row.scope == scope, row.key == key, row.failures > 0)
                .values(
                    failures=row.failures - 1,
                    blocked_until=case((row.failures - 1 < free, None), else_=row.blocked_until),
                )
            )


def clear_throttle(conn: Connection, username: str) -> None:
    conn.execute(
        delete(login_throttle).where(
            login_throttle.c.scope == "user", login_throttle.c.key == username[:KEY_CHARS]
        )
    )


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything central writes is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
