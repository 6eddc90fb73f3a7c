"""Putting one transaction's gate events into the events table, and learning which were new.

On PostgreSQL the rows go by binary COPY into a per-session staging table, then one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING` moves the new ones over: no per-row
statement parameters at all (an executemany of the same rows cost central five times the CPU;
psycopg's per-row work and SQLAlchemy's parameter processing were most of it). SQLite keeps
the executemany, then reads the new ids back by the transaction's `received_at`.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from pydantic_core import to_json
from sqlalchemy import Connection, Insert, bindparam, select

from central.store.db import insert_ignore
from central.store.tables import events
from protocol.messages import EventBatch, GateEvent

EventKey = tuple[str, str, int, int]  # site, gate, epoch, seq

# Every column but id, in the order the COPY rows carry them, with their PostgreSQL types.
_COPY_COLUMNS = (
    ("site", "varchar"),
    ("gate", "varchar"),
    ("epoch", "int8"),
    ("seq", "int8"),
    ("type", "varchar"),
    ("at", "timestamptz"),
    ("at_offset_min", "int4"),
    ("received_at", "timestamptz"),
    ("granted", "bool"),
    ("reason", "varchar"),
    ("pass_id", "varchar"),
    ("temperature_c", "float8"),
    ("clock_skew_s", "float8"),
    ("snapshot", "varchar"),
    ("details", "text"),  # JSON text: the json column takes its text form in binary COPY
)
_TYPES = [pg_type for _, pg_type in _COPY_COLUMNS]
_NAMES = sql.SQL(", ").join(sql.Identifier(name) for name, _ in _COPY_COLUMNS)
_STAGING = sql.Identifier("pg_temp", "events_staging")
# A session's own table, emptied at every commit (and by any rollback). Made from the events
# table's columns, without its defaults: the id sequence must not run for staged rows.
_CREATE_STAGING = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS events_staging ON COMMIT DELETE ROWS"
    " AS SELECT {names} FROM events WITH NO DATA"
).format(names=_NAMES)
_COPY = sql.SQL("COPY {staging} ({names}) FROM STDIN (FORMAT BINARY)").format(
    staging=_STAGING, names=_NAMES
)
_MOVE = sql.SQL(
    "INSERT INTO events ({names}) SELECT {names} FROM {staging}"
    " ON CONFLICT DO NOTHING RETURNING id, site, gate, epoch, seq"
).format(staging=_STAGING, names=_NAMES)


def insert_new(conn: Connection, batches: list[EventBatch], now: datetime) -> dict[EventKey, int]:
    """Insert every event not stored yet; the ids of those this call inserted, by key.

    A key the store already held (a gate's resend, another replica's copy) is not in the
    answer; within the call the first copy of a key is the one inserted.
    """
    if conn.dialect.name == "postgresql":
        return _copy_insert(conn, batches, now)
    conn.execute(_insert_events(conn.dialect.name), [
        _row(batch, event, now) for batch in batches for event in batch.events
    ])  # fmt: skip
    found = conn.execute(_NEW_ROWS, {"now": now})
    return {(r.site, r.gate, int(r.epoch), int(r.seq)): int(r.id) for r in found}


def _copy_insert(conn: Connection, batches: list[EventBatch], now: datetime) -> dict[EventKey, int]:
    # The DBAPI connection inside SQLAlchemy's transaction: the COPY is part of it.
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(_CREATE_STAGING)
        with cur.copy(_COPY) as copy:
            copy.set_types(_TYPES)
            write = copy.write_row
            for batch in batches:
                site, gate = batch.site, batch.gate
                for e in batch.events:  # once per event: no calls that can be spared
                    # The binary dumper converts `at` to UTC itself; the offset is kept apart.
                    offset = e.at.utcoffset()
                    minutes = 0 if offset is None else int(offset.total_seconds() // 60)
                    skew = e.details.get("clock_skew_s")
                    if not isinstance(skew, int | float) or isinstance(skew, bool):
                        skew = None
                    # pydantic-core's JSON encoder: a fifth of json.dumps' time for a details
                    # dict; e.type is a StrEnum, so it is its own text (`.value` costs more).
                    write((site, gate, e.epoch, e.seq, e.type, e.at, minutes, now, e.granted,
                           e.reason, e.pass_id, e.temperature_c, skew, e.snapshot,
                           to_json(e.details).decode()))  # fmt: skip
        cur.execute(_MOVE)
        return {(site, gate, epoch, seq): eid for eid, site, gate, epoch, seq in cur.fetchall()}


def _offset_min(event: GateEvent) -> int:
    offset = event.at.utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def _row(batch: EventBatch, event: GateEvent, now: datetime) -> dict[str, object]:
    return {
        "site": batch.site,
        "gate": batch.gate,
        "epoch": event.epoch,
        "seq": event.seq,
        "type": event.type.value,
        "at": event.at.astimezone(UTC),
        "at_offset_min": _offset_min(event),
        "received_at": now,
        "granted": event.granted,
        "reason": event.reason,
        "pass_id": event.pass_id,
        "temperature_c": event.temperature_c,
        "clock_skew_s": _float(event.details.get("clock_skew_s")),
        "snapshot": event.snapshot,
        "details": event.details,
    }


# Built once: constructing and cache-keying these per message was a tenth of ingest's CPU.
@functools.cache
def _insert_events(dialect: str) -> Insert:
    return insert_ignore(dialect, events)


_NEW_ROWS = select(events.c.id, events.c.site, events.c.gate, events.c.epoch, events.c.seq).where(
    events.c.received_at == bindparam("now")
)


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
