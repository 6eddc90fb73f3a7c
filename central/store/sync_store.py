"""The revocation list with a version that every change bumps, and deltas for gates."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, exists, func, select, update

from central.store.db import insert_ignore
from central.store.tables import counters, passes, revocations
from protocol.epass import BOUND_PREFIX
from protocol.messages import (
    BASE45_CLASS,
    MAX_BOUND_PASS_TEXT,
    MAX_HINTED_PASSES,
    Revocation,
    SyncDelta,
)

log = logging.getLogger(__name__)
VERSION_COUNTER = "revocation_version"
# A text the wire's bound admits (protocol/messages.py BoundPassText), of a device-bound pass.
_HINT_TEXT = re.compile(
    re.escape(BOUND_PREFIX) + BASE45_CLASS + f"{{0,{MAX_BOUND_PASS_TEXT - len(BOUND_PREFIX)}}}"
)


def current_version(conn: Connection) -> int:
    value = conn.execute(select(counters.c.value).where(counters.c.name == VERSION_COUNTER))
    return int(value.scalar() or 0)


def _bump_version(conn: Connection) -> int:
    """Next version; the row lock serialises concurrent writers until they commit."""
    conn.execute(insert_ignore(conn.dialect.name, counters).values(name=VERSION_COUNTER, value=0))
    conn.execute(
        update(counters)
        .where(counters.c.name == VERSION_COUNTER)
        .values(value=counters.c.value + 1)
    )
    return current_version(conn)


def revoke(
    conn: Connection,
    pass_id: str,
    reason: str,
    now: datetime,
    until: int | None = None,
    by: str | None = None,
) -> int:
    """Revoke a pass (again); returns the new list version."""
    version = _bump_version(conn)
    values = {
        "reason": reason,
        "revoked_at": now,
        "revoked_by": by,
        "until": until,
        "active": True,
        "version": version,
    }
    done = conn.execute(update(revocations).where(revocations.c.pass_id == pass_id).values(values))
    if done.rowcount == 0:
        conn.execute(revocations.insert().values(pass_id=pass_id, **values))
    return version


def revoke_many(
    conn: Connection, revoked: Sequence[tuple[str, int | None]], reason: str, now: datetime,
    by: str | None = None,
) -> int | None:  # fmt: skip
    """Revoke (pass_id, until) pairs at one new list version (an import's re-issues)."""
    if not revoked:
        return None
    version = _bump_version(conn)
    rows = [{"pass_id": p, "reason": reason, "revoked_at": now, "revoked_by": by, "until": until,
             "active": True, "version": version} for p, until in revoked]  # fmt: skip
    ids = [p for p, _ in revoked]
    known = set(conn.execute(select(revocations.c.pass_id).where(revocations.c.pass_id.in_(ids)))
                .scalars())  # fmt: skip
    if fresh := [r for r in rows if r["pass_id"] not in known]:
        conn.execute(revocations.insert(), fresh)
    for row in (r for r in rows if r["pass_id"] in known):
        conn.execute(update(revocations).where(revocations.c.pass_id == row["pass_id"]).values(row))
    return version


def unrevoke(conn: Connection, pass_id: str) -> int | None:
    """Lift a revocation; returns the new version, or None if the pass was not revoked."""
    row = conn.execute(select(revocations.c.active).where(revocations.c.pass_id == pass_id)).first()
    if row is None or not row.active:
        return None
    version = _bump_version(conn)
    conn.execute(
        update(revocations)
        .where(revocations.c.pass_id == pass_id)
        .values(active=False, version=version)
    )
    return version


def bind_pass(conn: Connection, pass_id: str, text: str) -> int:
    """Store a pass's device-bound text at a new list version, so its site's gates get it with
    their next delta (announce the version after commit); returns the version."""
    version = _bump_version(conn)
    conn.execute(
        update(passes).where(passes.c.pass_id == pass_id).values(text=text, bound_version=version)
    )
    return version


def bound_passes(
    conn: Connection, site: str, since: int, snapshot: bool, now: datetime
) -> list[str]:
    """The static texts of a site's device-bound passes, valid and not revoked, bound after
    `since` (a snapshot: all), newest first, at most MAX_HINTED_PASSES."""
    revoked = exists().where(revocations.c.pass_id == passes.c.pass_id, revocations.c.active)
    query = (
        select(passes.c.pass_id, passes.c.text)
        .where(passes.c.site == site, passes.c.bound_version >= (0 if snapshot else since + 1))
        .where(passes.c.valid_until > now, ~revoked)
        .order_by(passes.c.bound_version.desc(), passes.c.pass_id.desc())
        .limit(MAX_HINTED_PASSES)
    )
    texts = []
    for pass_id, text in conn.execute(query):
        # Only our own encoder wrote these; a row that would not fit the wire's bound would make
        # the gate refuse the whole delta, its revocations with it, so it is left out instead.
        if _HINT_TEXT.fullmatch(text) is None:
            log.error("pass %s: its stored text is not a device-bound pass; not sent", pass_id)
            continue
        texts.append(text)
    return texts


def delta_since(
    conn: Connection,
    since: int,
    max_changes: int,
    passes_of: str | None = None,
    now: datetime | None = None,
) -> SyncDelta:
    """What a gate at `since` must apply; a snapshot when it is new, too far behind, or ahead.
    With `passes_of` (the asking gate's site), also that site's device-bound passes."""
    version = current_version(conn)
    changes = conn.execute(
        select(func.count()).select_from(revocations).where(revocations.c.version > since)
    ).scalar_one()
    snapshot = since == 0 or since > version or changes > max_changes
    query = select(revocations.c.pass_id, revocations.c.reason, revocations.c.until,
                   revocations.c.active)  # fmt: skip
    if snapshot:
        query = query.where(revocations.c.active.is_(True))
    else:
        query = query.where(revocations.c.version > since)
    revoked: list[Revocation] = []
    unrevoked: list[str] = []
    for row in conn.execute(query):
        if row.active:
            revoked.append(Revocation(pass_id=row.pass_id, reason=row.reason, until=row.until))
        else:
            unrevoked.append(row.pass_id)
    delta = SyncDelta(version=version, snapshot=snapshot, revoked=revoked, unrevoked=unrevoked)
    return delta if passes_of is None else with_passes(conn, delta, passes_of, since, now)


def with_passes(
    conn: Connection, delta: SyncDelta, site: str, since: int, now: datetime | None = None
) -> SyncDelta:
    """A delta for a gate at `since` with its site's device-bound passes added (the revocation
    part is the same for every site: central reads and keeps it once per `since`)."""
    hinted = bound_passes(conn, site, since, delta.snapshot, now or datetime.now(UTC))
    # Not validated again: the revocations were, and bound_passes keeps only texts in bounds.
    return delta.model_copy(update={"passes": hinted}) if hinted else delta
