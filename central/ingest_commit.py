"""Storing validated messages: one transaction per batch, and no message can sink the others.

If a transaction fails for a reason that is not the database's own (the connection, a lock),
the batch is split in halves and each half stored on its own, down to the single message that
fails; that one is rejected and counted, everything else is stored. A clean batch costs one
transaction, a batch with one offender about 2·log2(n).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from central.ingest_check import Parsed, Reject
from central.store import ingest_store, presence
from protocol.live import LiveStatus, alert_kind, alert_opened, live_message
from protocol.messages import EventBatch, GateStatus, LiveMessage, SnapshotUpload

log = logging.getLogger(__name__)
DEADLOCK_RETRIES = 3
# The database itself failed (connection lost, locked): not the fault of any message, so
# splitting the batch would only reject good messages. The caller waits and gates resend.
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError)


@dataclass
class Committed:
    """What one committed transaction stored, and what to tell gates and watchers."""

    now: datetime
    result: ingest_store.StoreResult
    live: list[LiveMessage] = field(default_factory=list)
    sync_requests: list[Parsed] = field(default_factory=list)
    rejected: Counter[Reject] = field(default_factory=Counter)


def _is_deadlock(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code == "40P01" or "database is locked" in str(exc.orig)


def store_isolating(
    db: Engine | Connection, parsed: list[Parsed], counts: Counter[str]
) -> list[Committed]:
    """Store the batch; on a message's failure, store everything else without it."""
    if not parsed:
        return []
    try:
        return [store(db, parsed, counts)]
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as exc:
        if len(parsed) == 1:
            p = parsed[0]
            log.error(
                "storing a %s message from %s/%s failed (%s: %s); rejected, the rest stored",
                p.kind, p.site, p.gate, type(exc).__name__, str(exc)[:200],
            )  # fmt: skip
            return [Committed(datetime.now(UTC), ingest_store.StoreResult(),
                              rejected=Counter({Reject.STORE_ERROR: 1}))]  # fmt: skip
        counts["store_bisections"] += 1
        mid = len(parsed) // 2
        return store_isolating(db, parsed[:mid], counts) + store_isolating(db, parsed[mid:], counts)


def store(db: Engine | Connection, parsed: list[Parsed], counts: Counter[str]) -> Committed:
    """One transaction (on a connection of its own, or on `db` if that is one, which must not
    be in a transaction); retried if PostgreSQL finds a deadlock (it rolled back whole)."""
    # A fixed order of row locks across replicas makes deadlocks rare in the first place.
    parsed = sorted(parsed, key=lambda p: (p.site, p.gate, p.kind))
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            if isinstance(db, Connection):
                with db.begin():
                    return _store(db, parsed)
            with db.begin() as conn:
                return _store(conn, parsed)
        except OperationalError as exc:
            if attempt == DEADLOCK_RETRIES or not _is_deadlock(exc):
                raise
            counts["deadlock_retries"] += 1
    raise AssertionError("unreachable")


def _store(conn: Connection, parsed: list[Parsed]) -> Committed:
    out = Committed(datetime.now(UTC), ingest_store.StoreResult())
    # Events first, all at once: a snapshot in this transaction may name one of them.
    batches = [p.message for p in parsed if isinstance(p.message, EventBatch)]
    ingest_store.store_batches(conn, batches, out.now, out.result)
    statuses = [(p.site, p.gate, p.message) for p in parsed if isinstance(p.message, GateStatus)]
    for site, gate, status in presence.apply_statuses(conn, statuses, out.now):
        changed = LiveStatus(site=site, gate=gate, state=status.state, at=out.now)
        out.live.append(live_message("status", changed))
    for p in parsed:
        if isinstance(p.message, EventBatch | GateStatus):
            continue
        if isinstance(p.message, SnapshotUpload):
            if not ingest_store.store_snapshot(conn, p.site, p.gate, p.message, p.jpeg, out.now):
                out.rejected[Reject.UNREFERENCED_SNAPSHOT] += 1
        else:
            out.sync_requests.append(p)
    out.live.extend(_alerts_for(conn, out.result, out.now))
    return out


def _alerts_for(
    conn: Connection, result: ingest_store.StoreResult, now: datetime
) -> list[LiveMessage]:
    out = []
    for event_id, site, gate, event in result.inserted:
        kind = alert_kind(event)
        if kind is None:
            continue
        details = {"seq": event.seq, "reason": event.reason, "pass_id": event.pass_id}
        alert_id = presence.open_alert(
            conn, site, gate, kind, now, event_id=event_id, details=details
        )
        if alert_id is not None:
            out.append(alert_opened(alert_id, site, gate, kind, now, details, event_id))
    return out
