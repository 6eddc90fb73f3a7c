"""One-time enrolment links: only a hash of each token is kept; a link is used at most once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, select, update

from central.store import sync_store
from central.store.tables import enrolments

TOKEN_BYTES = 24


class LinkState(StrEnum):
    """What a link may still do; the phone page shows each as its own message."""

    OPEN = "open"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Link:
    token_hash: str
    pass_id: str
    expires_at: datetime
    state: LinkState


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_link(conn: Connection, pass_id: str, now: datetime, ttl: timedelta, by: str) -> str:
    """A new link for a pass (any earlier open one is revoked); returns the token, once."""
    revoke_links(conn, pass_id, now)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    conn.execute(
        enrolments.insert().values(
            token_hash=token_hash(token), pass_id=pass_id, created_at=now, created_by=by,
            expires_at=now + ttl,
        )
    )  # fmt: skip
    return token


def find_link(conn: Connection, token: str, now: datetime) -> Link | None:
    row = conn.execute(
        select(enrolments).where(enrolments.c.token_hash == token_hash(token))
    ).first()
    return None if row is None else Link(row.token_hash, row.pass_id, row.expires_at,
                                         _state(row, now))  # fmt: skip


def _state(row: Row[Any], now: datetime) -> LinkState:
    if row.revoked_at is not None:
        return LinkState.REVOKED
    if row.used_at is not None:
        return LinkState.USED
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    return LinkState.EXPIRED if expires <= now else LinkState.OPEN


def use_link(
    conn: Connection, link: Link, now: datetime, alg: str, device_key: str, text: str
) -> int | None:
    """Mark the link used and give its pass the phone-bound text, at a new list version (which
    the caller announces after commit); None if another request won."""
    done = conn.execute(
        update(enrolments)
        .where(enrolments.c.token_hash == link.token_hash, enrolments.c.used_at.is_(None),
               enrolments.c.revoked_at.is_(None))
        .values(used_at=now, device_alg=alg, device_key=device_key)
    ).rowcount  # fmt: skip
    if done != 1:
        return None
    return sync_store.bind_pass(conn, link.pass_id, text)


def revoke_links(conn: Connection, pass_id: str, now: datetime) -> int:
    """Revoke every unused link of a pass; returns how many."""
    return conn.execute(
        update(enrolments)
        .where(enrolments.c.pass_id == pass_id, enrolments.c.used_at.is_(None),
               enrolments.c.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount  # fmt: skip


def is_device_bound(conn: Connection, pass_id: str) -> bool:
    found = conn.execute(select(enrolments.c.pass_id).where(enrolments.c.pass_id == pass_id))
    return found.first() is not None
