"""Queries over issued passes and their revocation state; central's only pass SQL lives here."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, delete, or_, select, update

from central.store.tables import events, passes, people, revocations


class PassStatus(StrEnum):
    """A pass's state as the office sees it; a pass not yet valid is still `active`."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class PassQuery:
    """One page of a pass search, newest first; `after` is the last (issued_at, pass_id) seen."""

    q: str | None = None
    q_columns: tuple[str, ...] = ("holder", "display_name", "unit", "pass_id")
    site: str | None = None
    kind: str | None = None
    status: PassStatus | None = None
    after: tuple[datetime, str] | None = None
    limit: int = 50


def insert_passes(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store issued passes (times must already be UTC: SQLite keeps no offset), each tied to
    its person: the one with the same site, holder, unit and phone, or a new one."""
    if not rows:
        return
    people_ids: dict[tuple[Any, ...], int] = {}
    stored = []
    for row in rows:
        who = (row["site"], row["holder"], row.get("unit"), row.get("phone"))
        if who not in people_ids:
            people_ids[who] = _person_for(conn, *who, now=row["issued_at"])
        stored.append({**row, "person_id": people_ids[who]})
    conn.execute(passes.insert(), stored)


def _same(column: ColumnElement[Any], value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _person_for(
    conn: Connection, site: str, holder: str, unit: str | None, phone: str | None, now: datetime
) -> int:
    found = conn.execute(
        select(people.c.id)
        .where(people.c.site == site, people.c.holder == holder)
        .where(_same(people.c.unit, unit), _same(people.c.phone, phone))
        .order_by(people.c.id)
        .limit(1)
    ).scalar()
    if found is not None:
        return int(found)
    result = conn.execute(
        people.insert().values(site=site, holder=holder, unit=unit, phone=phone, created_at=now)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


@dataclass(frozen=True, slots=True)
class Forgotten:
    person_id: int
    pass_ids: list[str]
    events_scrubbed: int


def person_passes(conn: Connection, person_id: int) -> list[Row[Any]] | None:
    """The person's passes (with revocation columns), or None when there is no such person."""
    if conn.execute(select(people.c.id).where(people.c.id == person_id)).first() is None:
        return None
    query = _with_revocation().where(passes.c.person_id == person_id).order_by(passes.c.pass_id)
    return list(conn.execute(query))


def forget_person(conn: Connection, person_id: int, pass_ids: list[str]) -> int:
    """Delete the person and their pass rows, and the masked name from their events' details
    (events stay: they are the compound's record). The caller revokes the passes first.
    Returns how many events were scrubbed."""
    scrubbed = 0
    for chunk in range(0, len(pass_ids), 500):
        ids = pass_ids[chunk : chunk + 500]
        rows = conn.execute(
            select(events.c.id, events.c.details).where(events.c.pass_id.in_(ids))
        ).all()
        for row in rows:
            details = dict(row.details or {})
            if any(k in details for k in PERSONAL_DETAIL_KEYS):
                for key in PERSONAL_DETAIL_KEYS:
                    details.pop(key, None)
                conn.execute(update(events).where(events.c.id == row.id).values(details=details))
                scrubbed += 1
        conn.execute(delete(passes).where(passes.c.pass_id.in_(ids)))
    conn.execute(delete(people).where(people.c.id == person_id))
    return scrubbed


# What a gate journals about the holder beside the pass id (edge/decide.py journal_details).
PERSONAL_DETAIL_KEYS = ("display_name",)


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


def _search_clause(q: str, columns: tuple[str, ...]) -> ColumnElement[bool]:
    matches = [
        passes.c[name].icontains(q, autoescape=True)
        for name in ("holder", "display_name", "unit")
        if name in columns
    ]
    if "pass_id" in columns:
        matches.append(passes.c.pass_id.startswith(q.lower(), autoescape=True))
    return or_(*matches)


def search_passes(conn: Connection, query: PassQuery, now: datetime) -> list[Row[Any]]:
    """Up to query.limit passes matching the query, newest issued first."""
    stmt = _with_revocation()
    if query.q:
        stmt = stmt.where(_search_clause(query.q, query.q_columns))
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
