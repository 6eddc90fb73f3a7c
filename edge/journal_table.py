"""The SQL of the gate store's journal table: an entry in, entries out as the wire's
GateEvent, old ones pruned; and the runs of seqs the gate reports as dropped."""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from protocol.live import Flag, has_flag
from protocol.messages import ALERT_TYPES, DetailValue, EventType, GateEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal entry's own columns."""

    event_type: EventType
    at: datetime
    granted: bool | None
    reason: str | None
    pass_id: str | None
    temperature_c: float | None
    snapshot: str | None
    details: dict[str, DetailValue]


def insert(conn: sqlite3.Connection, epoch: int, entry: Entry) -> int:
    """Append the entry inside the caller's transaction; its seq. Alerts go first to central."""
    alert = entry.event_type in ALERT_TYPES or has_flag(entry.details, Flag.FEVER)
    granted = entry.granted
    cur = conn.execute(
        "INSERT INTO journal (epoch, ts, at, type, granted, reason, pass_id,"
        " temperature_c, snapshot, details, priority) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            epoch,
            entry.at.timestamp(),
            entry.at.isoformat(),
            entry.event_type.value,
            None if granted is None else int(granted),
            entry.reason,
            entry.pass_id,
            entry.temperature_c,
            entry.snapshot,
            json.dumps(entry.details, ensure_ascii=False, separators=(",", ":")),
            1 if alert else 0,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def prune(
    conn: sqlite3.Connection, acked_before: float, max_unacked: int
) -> tuple[int, list[tuple[Any, ...]]]:
    """Delete acked entries older than `acked_before`, and the unacked beyond `max_unacked`
    (ordinary entries, oldest, before alerts); how many acked went, and the (epoch, seq) of
    the unacked that did."""
    acked = conn.execute("DELETE FROM journal WHERE acked = 1 AND ts < ?", (acked_before,))
    excess = conn.execute("SELECT count(*) FROM journal WHERE acked = 0").fetchone()[0]
    victims: list[tuple[Any, ...]] = []
    if excess > max_unacked:
        victims = conn.execute(
            "SELECT epoch, seq FROM journal WHERE acked = 0 ORDER BY priority, seq LIMIT ?",
            (excess - max_unacked,),
        ).fetchall()
        conn.executemany("DELETE FROM journal WHERE seq = ?", [(v[1],) for v in victims])
    return acked.rowcount, victims


def seq_ranges(rows: list[tuple[Any, ...]]) -> list[str]:
    """(epoch, seq) pairs -> ["epoch:first-last", ...] runs, for reporting dropped entries."""
    out: list[str] = []
    run: list[int] = []
    for epoch, seq in sorted((int(e), int(s)) for e, s in rows):
        if run and run[0] == epoch and run[2] + 1 == seq:
            run[2] = seq
            continue
        if run:
            out.append(f"{run[0]}:{run[1]}-{run[2]}")
        run = [epoch, seq, seq]
    if run:
        out.append(f"{run[0]}:{run[1]}-{run[2]}")
    return out


def parse_seq_ranges(ranges: list[str]) -> list[tuple[int, int, int]]:
    """Inverse of seq_ranges: ["epoch:first-last"] -> [(epoch, first, last)]; skips bad items."""
    out = []
    for item in ranges:
        try:
            epoch, span = item.split(":")
            first, last = span.split("-")
            out.append((int(epoch), int(first), int(last)))
        except ValueError:
            continue
    return out


def row_event(row: tuple[object, ...]) -> GateEvent:
    epoch, seq, at, etype, granted, reason, pass_id, temp, snapshot, details = row
    fields: dict[str, Any] = {
        "epoch": int(str(epoch)),
        "seq": int(str(seq)),
        "at": datetime.fromisoformat(str(at)),
        "type": EventType(str(etype)),
        "granted": None if granted is None else bool(granted),
        "reason": None if reason is None else str(reason),
        "pass_id": None if pass_id is None else str(pass_id),
        "temperature_c": None if temp is None else float(str(temp)),
        "snapshot": None if snapshot is None else str(snapshot),
        "details": json.loads(str(details)),
    }
    try:
        return GateEvent(**fields)
    except ValidationError as exc:
        return _sendable(fields, exc)


def _sendable(fields: dict[str, Any], exc: ValidationError) -> GateEvent:
    """An entry outside the wire bounds (a clock in 2101, a sensor reading 999 °C) still goes.

    Were it refused here, the sender would retry it forever and the journal behind it would
    wedge; so the offending fields are cleared, named in `details.invalid_fields`, and the
    entry keeps its seq, so central stores it and no hole opens.
    """
    bad = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]} - {"epoch", "seq"})
    log.warning("journal seq %s is outside the wire bounds in %s", fields["seq"], bad)
    clean = dict(fields)
    extra: dict[str, DetailValue] = {"invalid_fields": bad}
    for name in bad:
        if name == "at":
            extra["gate_at"] = str(fields["at"])[:64]
            clean["at"] = utc_now()
        elif name == "details":
            clean["details"] = {}
        elif name != "type":
            clean[name] = None
    clean["details"] = {**clean["details"], **extra}
    try:
        return GateEvent(**clean)
    except ValidationError:  # what is left is still refused: send the bare facts
        return GateEvent(epoch=clean["epoch"], seq=clean["seq"], at=utc_now(),
                         type=clean["type"], details=extra)  # fmt: skip


def utc_now() -> datetime:
    return datetime.now(UTC)
