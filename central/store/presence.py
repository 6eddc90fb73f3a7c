"""Gates: registration, live status from their retained status messages, and alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from central.store.db import insert_ignore, keys_in
from central.store.tables import alerts, gates
from protocol.messages import GateState, GateStatus


def register_gate(conn: Connection, site: str, gate: str, now: datetime, **extra: Any) -> int:
    """Create the gate if new; returns its id."""
    conn.execute(
        insert_ignore(conn.dialect.name, gates).values(
            site=site, gate=gate, created_at=now, config=extra.get("config", {}),
            mqtt_username=extra.get("mqtt_username"), online=False, status={},
        )
    )  # fmt: skip
    found = conn.execute(select(gates.c.id).where(gates.c.site == site, gates.c.gate == gate))
    return int(found.scalar_one())


def known_gates(conn: Connection) -> set[tuple[str, str]]:
    return {(r.site, r.gate) for r in conn.execute(select(gates.c.site, gates.c.gate))}


def apply_status(conn: Connection, site: str, gate: str, status: GateStatus, now: datetime) -> bool:
    """Record a gate's status; returns True when its online state changed."""
    return bool(apply_statuses(conn, [(site, gate, status)], now))


def apply_statuses(
    conn: Connection, received: list[tuple[str, str, GateStatus]], now: datetime
) -> list[tuple[str, str, GateStatus]]:
    """Record gates' statuses, in order; returns those that changed a gate's online state.

    One SELECT for every gate named and one UPDATE per gate, sent by executemany (a gate's
    several statuses merge into one UPDATE that leaves its row as applying them in turn
    would), so 200 gates saying hello cost two round trips, not 400.
    """
    if not received:
        return []
    keys = sorted({(site, gate) for site, gate, _ in received})
    online = {
        (r.site, r.gate): bool(r.online)
        for r in conn.execute(
            _ONLINE_NOW.where(keys_in(conn.dialect.name, [gates.c.site, gates.c.gate], keys))
        )
    }
    changes: dict[tuple[str, str], dict[str, Any]] = {}
    changed = []
    for site, gate, status in received:
        was = online.get((site, gate))
        if was is None:
            continue  # not registered
        now_online = status.state is GateState.ONLINE
        values = changes.setdefault((site, gate), {"k_site": site, "k_gate": gate})
        values["online"] = now_online
        if now_online:
            values["last_seen"] = now
            values["offline_since"] = None
            values["status"] = status.model_dump(mode="json", exclude={"v", "state"})
        elif was:
            values["offline_since"] = now
        online[(site, gate)] = now_online
        if was != now_online:
            changed.append((site, gate, status))
    by_columns: dict[frozenset[str], list[dict[str, Any]]] = {}
    for key in keys:
        if key in changes:
            by_columns.setdefault(frozenset(changes[key]), []).append(changes[key])
    for rows in by_columns.values():
        conn.execute(_UPDATE_GATE, rows)  # SET: the columns each row names
    return changed


_ONLINE_NOW = select(gates.c.site, gates.c.gate, gates.c.online)
_UPDATE_GATE = update(gates).where(
    gates.c.site == bindparam("k_site"), gates.c.gate == bindparam("k_gate")
)


def touch(conn: Connection, site: str, gate: str, now: datetime) -> None:
    """Events from a gate prove it is alive."""
    conn.execute(
        update(gates).where(gates.c.site == site, gates.c.gate == gate).values(last_seen=now)
    )


def offline_too_long(
    conn: Connection, grace: timedelta, now: datetime
) -> list[tuple[str, str, datetime]]:
    rows = conn.execute(
        select(gates.c.site, gates.c.gate, gates.c.offline_since).where(
            gates.c.online.is_(False),
            gates.c.offline_since.is_not(None),
            gates.c.offline_since < now - grace,
        )
    )
    return [(r.site, r.gate, r.offline_since) for r in rows]


def open_alert(
    conn: Connection,
    site: str,
    gate: str,
    kind: str,
    now: datetime,
    *,
    event_id: int | None = None,
    details: dict[str, Any] | None = None,
    dedupe: str | None = None,
) -> int | None:
    """Open an alert; with `dedupe`, at most one open alert per key. Returns its id if new."""
    key = None if dedupe is None else f"{site}/{gate}/{kind}/{dedupe}"
    stmt = insert_ignore(conn.dialect.name, alerts).values(
        site=site, gate=gate, kind=kind, state="open", opened_at=now, event_id=event_id,
        details=details or {}, dedupe_key=key,
    )  # fmt: skip
    new_id = conn.execute(stmt.returning(alerts.c.id)).scalar()
    return None if new_id is None else int(new_id)


def set_mqtt_username(conn: Connection, site: str, gate: str, username: str) -> None:
    conn.execute(
        update(gates)
        .where(gates.c.site == site, gates.c.gate == gate)
        .values(mqtt_username=username)
    )
