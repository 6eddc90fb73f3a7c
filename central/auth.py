"""Users, argon2 passwords, opaque bearer tokens (revocable, expiring), API keys, login limits.

Tokens and API keys are random strings; only their SHA-256 is stored, so a database leak does
not leak a usable credential, and every replica checks them the same way.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, func, select, update

from central.store.tables import api_keys, login_failures, sessions, users

_hasher = PasswordHasher()
API_KEY_PREFIX = "mjk_"
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_MAX_FAILURES = 5


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


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_user(conn: Connection, username: str, password: str, role: Role, now: datetime) -> int:
    if conn.execute(select(users.c.id).where(users.c.username == username)).first():
        raise UserExistsError(f"user {username!r} already exists")
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    result = conn.execute(
        users.insert().values(
            username=username, password_hash=_hasher.hash(password), role=role.value,
            created_at=now, disabled=False,
        )
    )  # fmt: skip
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def set_password(conn: Connection, username: str, password: str) -> bool:
    done = conn.execute(
        update(users)
        .where(users.c.username == username)
        .values(password_hash=_hasher.hash(password))
    )
    return done.rowcount == 1


def too_many_failures(conn: Connection, username: str, now: datetime) -> bool:
    count = conn.execute(
        select(func.count())
        .select_from(login_failures)
        .where(login_failures.c.username == username, login_failures.c.at > now - LOGIN_WINDOW)
    ).scalar_one()
    return int(count) >= LOGIN_MAX_FAILURES


def check_login(
    conn: Connection, username: str, password: str, remote: str, now: datetime
) -> Principal | None:
    """The user if the password is right; records the failure otherwise."""
    row = conn.execute(select(users).where(users.c.username == username)).first()
    ok = False
    if row is not None and not row.disabled:
        try:
            ok = _hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        _hasher.hash(password)  # spend the same time for unknown users
    if not ok or row is None:
        conn.execute(login_failures.insert().values(username=username, remote=remote, at=now))
        return None
    conn.execute(delete(login_failures).where(login_failures.c.username == username))
    return Principal(row.username, Role(row.role))


def issue_token(conn: Connection, username: str, ttl: timedelta, now: datetime) -> str:
    user_id = conn.execute(select(users.c.id).where(users.c.username == username)).scalar_one()
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


def create_api_key(
    conn: Connection, name: str, role: Role, created_by: str, now: datetime
) -> tuple[int, str]:
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    result = conn.execute(
        api_keys.insert().values(
            name=name, key_hash=_digest(key), role=role.value, created_by=created_by,
            created_at=now, revoked=False,
        )
    )  # fmt: skip
    return int(result.inserted_primary_key[0]), key  # type: ignore[index]


def principal_for_api_key(conn: Connection, key: str) -> Principal | None:
    row = conn.execute(select(api_keys).where(api_keys.c.key_hash == _digest(key))).first()
    if row is None or row.revoked:
        return None
    return Principal(f"api-key:{row.name}", Role(row.role), api_key_id=row.id)


def revoke_api_key(conn: Connection, key_id: int) -> bool:
    done = conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked=True))
    return done.rowcount == 1


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything central writes is UTC."""
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
