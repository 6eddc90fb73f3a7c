"""The office's queries beside passes_store: current passes by person, phones, gates' versions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, or_, select, update

from central.store.tables import gates, passes, revocations

PersonKey = tuple[str, str, str]  # (site, holder, unit or "")


def person_key(site: str, holder: str, unit: str | None) -> PersonKey:
    return site, holder, unit or ""


def current_passes(conn: Connection, sites: Iterable[str]) -> dict[PersonKey, Row[Any]]:
    """Each person's newest unrevoked pass at these sites, keyed by (site, holder, unit)."""
    query = (
        select(passes)
        .select_from(passes.outerjoin(revocations, revocations.c.pass_id == passes.c.pass_id))
        .where(
            passes.c.site.in_(sorted(set(sites))),
            or_(revocations.c.active.is_(None), revocations.c.active.is_(False)),
        )
        .order_by(passes.c.issued_at, passes.c.pass_id)
    )
    # Ascending, so the newest pass of a person is the one left in the dict.
    return {person_key(r.site, r.holder, r.unit): r for r in conn.execute(query)}


def set_phone(conn: Connection, pass_id: str, phone: str | None) -> None:
    conn.execute(update(passes).where(passes.c.pass_id == pass_id).values(phone=phone))


def revocation_version(conn: Connection, pass_id: str) -> int | None:
    """The list version at which the pass's revocation took effect; None when it is not revoked."""
    row = conn.execute(
        select(revocations.c.version).where(
            revocations.c.pass_id == pass_id, revocations.c.active.is_(True)
        )
    ).first()
    return None if row is None else int(row.version)


def site_gates(conn: Connection, site: str) -> list[Row[Any]]:
    """The site's gates with their last reported status (which carries cache_version)."""
    query = select(gates.c.gate, gates.c.online, gates.c.last_seen, gates.c.status)
    return list(conn.execute(query.where(gates.c.site == site).order_by(gates.c.gate)))
