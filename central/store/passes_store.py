"""Queries over issued passes and their revocation state; central's only pass SQL lives here."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, or_, select

from central.store.tables import passes, revocations


class PassStatus(StrEnum):
    """A pass's state as the office sees it; a pass not yet valid is still `active`."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class PassQuery:
    """One page of a pass search, newest first; `after` is the last (issued_at, pass_id) seen."""

    q: str | None = None
    site: str | None = None
    kind: str | None = None
    status: PassStatus | None = None
    after: tuple[datetime, str] | None = None
    limit: int = 50


def insert_passes(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store issued passes (times must already be UTC: SQLite keeps no offset)."""
    if rows:
        conn.execute(passes.insert(), list(rows))


def _with_revocation() -> Select[Any]:
    return select(
        passes,
        revocations.c.active.label("revoked"),
        revocations.c.reason.label("revoke_reason"),
        revocations.c.revoked_at,
        revocations.c.revoked_by,
    ).select_from(passes.outerjoin(revocations, revocations.c.pass_id == passes.c.pass_id))


def get_pass(conn: Connection, pass_id: str) -> Row[Any] | None:
    """One pass with its revocation columns, or None."""
    return conn.execute(_with_revocation().where(passes.c.pass_id == pass_id)).first()


def _is_revoked() -> ColumnElement[bool]:
    return revocations.c.active.is_(True)


def _status_clause(status: PassStatus, now: datetime) -> ColumnElement[bool]:
    live = or_(revocations.c.active.is_(None), revocations.c.active.is_(False))
    if status is PassStatus.REVOKED:
        return _is_revoked()
    if status is PassStatus.EXPIRED:
        return and_(live, passes.c.valid_until <= now)
    return and_(live, passes.c.valid_until > now)


def _search_clause(q: str) -> ColumnElement[bool]:
    return or_(
        passes.c.holder.icontains(q, autoescape=True),
        passes.c.display_name.icontains(q, autoescape=True),
        passes.c.unit.icontains(q, autoescape=True),
        passes.c.pass_id.startswith(q.lower(), autoescape=True),
    )


def search_passes(conn: Connection, query: PassQuery, now: datetime) -> list[Row[Any]]:
    """Up to query.limit passes matching the query, newest issued first."""
    stmt = _with_revocation()
    if query.q:
        stmt = stmt.where(_search_clause(query.q))
    if query.site:
        stmt = stmt.where(passes.c.site == query.site)
    if query.kind:
        stmt = stmt.where(passes.c.kind == query.kind)
    if query.status is not None:
        stmt = stmt.where(_status_clause(query.status, now))
    if query.after is not None:
        at, pass_id = query.after
        stmt = stmt.where(
            or_(
                passes.c.issued_at < at,
                and_(passes.c.issued_at == at, passes.c.pass_id < pass_id),
            )
        )
    stmt = stmt.order_by(passes.c.issued_at.desc(), passes.c.pass_id.desc()).limit(query.limit)
    return list(conn.execute(stmt).all())


def cursor_after(row: Row[Any]) -> str:
    """An opaque cursor for the page after this row: its issued_at (as stored) and pass_id."""
    raw = f"{row.issued_at.isoformat()}|{row.pass_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def parse_cursor(cursor: str) -> tuple[datetime, str]:
    """The (issued_at, pass_id) in a cursor; ValueError when it is not one of ours."""
    try:
        at, _, pass_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        at_time = datetime.fromisoformat(at)
        if at_time.tzinfo is not None:
            at_time = at_time.astimezone(UTC)
        return at_time, pass_id
    except (UnicodeError, OverflowError) as exc:
        raise ValueError("bad cursor") from exc
