"""How often a login may be tried: one row per user name and one per client address
(`login_throttle`).

An attempt is counted *before* its password is checked, with a compare-and-set, so parallel
attempts cannot slip past the count; a right password refunds it. Past the free failures each
further one doubles the wait before the next attempt (capped), so a user name under attack
stays usable to its owner after the wait, and nobody can wall an account off for good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, case, delete, or_, select, update

from central.store.db import insert_ignore
from central.store.tables import login_throttle
from central.views import aware

KEY_CHARS = 80  # the throttle table's key column: longer names and addresses are truncated


@dataclass(frozen=True)
class LoginPolicy:
    """Free failures per user name and per address, then a doubling wait, forgotten after
    `reset_s` quiet (central/routes/auth.py builds it from [auth])."""

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
            (aware(r.blocked_until) - now).total_seconds()
            for r in rows.values()
            if r.blocked_until is not None and aware(r.blocked_until) > now
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
    stale = row is None or aware(row.last_at) <= now - timedelta(seconds=policy.reset_s)
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
