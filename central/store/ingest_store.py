"""Storing gate journal batches exactly once, tracking what is contiguous, and finding holes."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Table,
    and_,
    bindparam,
    case,
    func,
    select,
    update,
)
from sqlalchemy.sql.dml import ReturningInsert

from central.store.db import insert_ignore, keys_in
from central.store.event_insert import insert_new
from central.store.tables import events, gate_epochs, lost_events, snapshots
from protocol.messages import EventBatch, EventType, GateEvent, SnapshotUpload


@dataclass
class StoreResult:
    """What one transaction stored, and what to tell gates and watchers afterwards."""

    inserted: list[tuple[int, str, str, GateEvent]] = field(default_factory=list)
    acks: dict[tuple[str, str, int], int] = field(default_factory=dict)
    duplicates: int = 0
    seen: set[tuple[str, str, int, int]] = field(default_factory=set)


def store_batches(
    conn: Connection, batches: list[EventBatch], now: datetime, result: StoreResult
) -> None:
    """Insert one transaction's batches idempotently, then move each (gate, epoch) touched on.

    One insert for every event (event_insert: COPY on PostgreSQL), however many gates and
    messages the transaction holds; the acks go in `result.acks`.
    """
    if not batches:
        return
    new_ids = insert_new(conn, batches, now)
    seen, inserted, dropped = result.seen, result.inserted, EventType.JOURNAL_DROPPED
    for batch in batches:
        site, gate = batch.site, batch.gate
        for event in batch.events:  # locals only: this loop runs once per event
            key = (site, gate, event.epoch, event.seq)
            new_id = new_ids.get(key)
            if new_id is None or key in seen:
                result.duplicates += 1
                continue
            seen.add(key)
            inserted.append((new_id, site, gate, event))
            if event.type is dropped:
                _record_dropped(conn, batch, event, now)
    advance_epochs(conn, _EpochsSeen.of(batches), now, result)


def store_batch(conn: Connection, batch: EventBatch, now: datetime, result: StoreResult) -> None:
    """One batch in its own call (tests and tools); ingest stores a transaction's at once."""
    store_batches(conn, [batch], now, result)


EpochKey = tuple[str, str, int]


@dataclass
class _EpochsSeen:
    """Per (site, gate, epoch) in a transaction: its first seq if new, top seq, seqs carried."""

    first: dict[EpochKey, int] = field(default_factory=dict)
    top: dict[EpochKey, int] = field(default_factory=dict)
    seqs: dict[EpochKey, set[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, batches: list[EventBatch]) -> _EpochsSeen:
        out = cls()
        for batch in batches:
            by_epoch: dict[int, list[int]] = {}
            for event in batch.events:  # a batch mostly holds one epoch
                by_epoch.setdefault(event.epoch, []).append(event.seq)
            for epoch, seqs in by_epoch.items():
                key, top = (batch.site, batch.gate, epoch), max(seqs)
                out.seqs.setdefault(key, set()).update(seqs)
                # As stored one batch at a time: the first batch to name an epoch starts it.
                out.first.setdefault(key, batch.epoch_first_seq.get(epoch, top))
                out.top[key] = max(out.top.get(key, 0), top)
        return out


def advance_epochs(conn: Connection, seen: _EpochsSeen, now: datetime, result: StoreResult) -> None:
    """Note each epoch's new top seq and move its acked_seq on; the acks go in result.acks.

    The usual case, a gate's next entries in order and no lost range ahead of its ack, needs no
    probing: the transaction itself carries every seq from the old ack to the top. The rest go
    through advance_contiguous. Rows are written in key order, as before (deadlocks stay rare).
    """
    keys = sorted(seen.top)
    known = {
        (r.site, r.gate, int(r.epoch)): (int(r.acked_seq), int(r.max_seq))
        for r in conn.execute(select(gate_epochs).where(_epoch_in(conn, gate_epochs, keys)))
    }
    if new := [k for k in keys if k not in known]:
        known |= _start_epochs(conn, new, seen)
    lost_top = {
        (r.site, r.gate, int(r.epoch)): int(r.last)
        for r in conn.execute(
            select(lost_events.c.site, lost_events.c.gate, lost_events.c.epoch,
                   func.max(lost_events.c.last_seq).label("last"))
            .where(_epoch_in(conn, lost_events, keys))
            .group_by(lost_events.c.site, lost_events.c.gate, lost_events.c.epoch)
        )
    }  # fmt: skip
    in_order: list[dict[str, object]] = []
    for key in keys:
        top = seen.top[key]
        if key in known and _carries_run(seen.seqs[key], *known[key], top, lost_top.get(key)):
            result.acks[key] = max(top, known[key][1])
            in_order.append(_params(key, k_top=top, k_acked=result.acks[key]))
            continue
        _flush_in_order(conn, in_order)
        conn.execute(_RAISE_MAX, _params(key, k_top=top))
        result.acks[key] = advance_contiguous(conn, *key, now)
    _flush_in_order(conn, in_order)


def _start_epochs(
    conn: Connection, keys: list[EpochKey], seen: _EpochsSeen
) -> dict[EpochKey, tuple[int, int]]:
    """Insert the epochs first named here; (acked, max) of those this call inserted.

    An epoch another replica inserted meanwhile is left out (its row may have moved on), so
    it goes through advance_contiguous like any other that is not known here.
    """
    started = conn.execute(
        _start_epoch(conn.dialect.name),
        [{"site": k[0], "gate": k[1], "epoch": k[2], "first_seq": seen.first[k],
          "acked_seq": seen.first[k] - 1, "max_seq": seen.top[k], "replay_requests": 0}
         for k in keys],
    )  # fmt: skip
    return {(r.site, r.gate, int(r.epoch)): (int(r.acked_seq), int(r.max_seq)) for r in started}


@functools.cache
def _start_epoch(dialect: str) -> ReturningInsert[Any]:
    c = gate_epochs.c
    return insert_ignore(dialect, gate_epochs).returning(
        c.site, c.gate, c.epoch, c.acked_seq, c.max_seq
    )


def _carries_run(seqs: set[int], acked: int, max_seq: int, top: int, lost: int | None) -> bool:
    """Every seq after the ack up to the new top is in this transaction, and no lost range
    reaches past the ack: then acked moves to the top, as advance_contiguous would find."""
    end = max(top, max_seq)
    if lost is not None and lost > acked:
        return False
    return sum(1 for s in seqs if acked < s <= end) == end - acked


def _flush_in_order(conn: Connection, rows: list[dict[str, object]]) -> None:
    if rows:
        conn.execute(_ACK_IN_ORDER, rows)
        rows.clear()


def _params(key: EpochKey, **values: int) -> dict[str, object]:
    return {"k_site": key[0], "k_gate": key[1], "k_epoch": key[2], **values}


def _epoch_in(conn: Connection, table: Table, keys: list[EpochKey]) -> ColumnElement[bool]:
    c = table.c
    return keys_in(conn.dialect.name, [c.site, c.gate, c.epoch], list(keys))


def _keyed(table: Table) -> ColumnElement[bool]:
    return and_(
        table.c.site == bindparam("k_site"),
        table.c.gate == bindparam("k_gate"),
        table.c.epoch == bindparam("k_epoch"),
    )


# max_seq only ever grows, even when another replica raised it meanwhile.
_NEW_MAX = case(
    (gate_epochs.c.max_seq < bindparam("k_top"), bindparam("k_top")),
    else_=gate_epochs.c.max_seq,
)
_RAISE_MAX = update(gate_epochs).where(_keyed(gate_epochs)).values(max_seq=_NEW_MAX)
_ACK_IN_ORDER = (
    update(gate_epochs)
    .where(_keyed(gate_epochs))
    .values(max_seq=_NEW_MAX, acked_seq=bindparam("k_acked"), gap_since=None, replay_requests=0)
)


def _record_dropped(conn: Connection, batch: EventBatch, event: GateEvent, now: datetime) -> None:
    """The gate says it dropped these entries: record them as lost so the sequence can move on."""
    for epoch, first, last in event.dropped_ranges():  # validated with the message
        conn.execute(
            insert_ignore(conn.dialect.name, lost_events).values(
                site=batch.site, gate=batch.gate, epoch=epoch, first_seq=first, last_seq=last,
                cause="dropped_by_gate", recorded_at=now,
            )
        )  # fmt: skip


def _epoch_key(site: str, gate: str, epoch: int) -> ColumnElement[bool]:
    return and_(
        gate_epochs.c.site == site, gate_epochs.c.gate == gate, gate_epochs.c.epoch == epoch
    )


def advance_contiguous(conn: Connection, site: str, gate: str, epoch: int, now: datetime) -> int:
    """Move the epoch's acked_seq over everything stored or known lost; return it.

    Each step jumps a whole run of stored seqs or a whole lost range, so the work grows with
    the number of runs and holes passed, never with how many seqs a hole spans.
    """
    key = _epoch_key(site, gate, epoch)
    row = conn.execute(
        select(gate_epochs.c.acked_seq, gate_epochs.c.max_seq, gate_epochs.c.gap_since).where(key)
    ).first()
    if row is None:
        return 0
    acked = int(row.acked_seq)
    while (nxt := _jump(conn, site, gate, epoch, acked)) > acked:
        acked = nxt
    has_hole = acked < int(row.max_seq)
    gap_since = (row.gap_since or now) if has_hole else None
    values: dict[str, object] = {"acked_seq": acked, "gap_since": gap_since}
    if not has_hole:
        values["replay_requests"] = 0
    conn.execute(update(gate_epochs).where(key).values(**values))
    return acked


def _jump(conn: Connection, site: str, gate: str, epoch: int, acked: int) -> int:
    """The end of the lost range or stored run that starts right after `acked` (else acked)."""
    lost_end = conn.execute(
        select(func.max(lost_events.c.last_seq)).where(
            *_same(lost_events, site, gate, epoch),
            lost_events.c.first_seq <= acked + 1,
            lost_events.c.last_seq > acked,
        )
    ).scalar()
    if lost_end is not None:
        return int(lost_end)
    if not _stored(conn, site, gate, epoch, acked + 1):
        return acked  # a hole: one index probe, however long it is
    # The first stored seq after acked whose successor is missing ends the run; the unique
    # (site, gate, epoch, seq) index answers each probe.
    after = events.alias("after")
    run_end = conn.execute(
        select(events.c.seq)
        .where(*_same(events, site, gate, epoch), events.c.seq >= acked + 1)
        .where(
            ~select(after.c.seq)
            .where(*_same(after, site, gate, epoch), after.c.seq == events.c.seq + 1)
            .exists()
        )
        .order_by(events.c.seq)
        .limit(1)
    ).scalar()
    return acked if run_end is None else int(run_end)


def _same(table: FromClause, site: str, gate: str, epoch: int) -> list[ColumnElement[bool]]:
    return [table.c.site == site, table.c.gate == gate, table.c.epoch == epoch]


def _stored(conn: Connection, site: str, gate: str, epoch: int, seq: int) -> bool:
    found = conn.execute(
        select(events.c.id).where(*_same(events, site, gate, epoch), events.c.seq == seq)
    )
    return found.first() is not None


@dataclass(frozen=True)
class Hole:
    site: str
    gate: str
    epoch: int
    acked_seq: int
    max_seq: int
    replay_requests: int


def stale_holes(conn: Connection, older_than: timedelta, now: datetime) -> list[Hole]:
    """Epochs whose hole has stayed open longer than older_than."""
    rows = conn.execute(
        select(gate_epochs).where(
            gate_epochs.c.gap_since.is_not(None), gate_epochs.c.gap_since < now - older_than
        )
    ).all()
    return [Hole(r.site, r.gate, r.epoch, r.acked_seq, r.max_seq, r.replay_requests) for r in rows]


def note_replay(conn: Connection, hole: Hole, now: datetime) -> None:
    conn.execute(
        update(gate_epochs)
        .where(_epoch_key(hole.site, hole.gate, hole.epoch))
        .values(replay_requests=gate_epochs.c.replay_requests + 1, gap_since=now)
    )


def give_up_hole(conn: Connection, hole: Hole, now: datetime) -> tuple[int, int]:
    """The gate no longer has the missing entries: record the first missing run as lost.

    The run ends before the next stored seq or known lost range: two index lookups, however
    many seqs it spans.
    """
    first = hole.acked_seq + 1
    next_stored = conn.execute(
        select(func.min(events.c.seq)).where(
            *_same(events, hole.site, hole.gate, hole.epoch), events.c.seq > hole.acked_seq
        )
    ).scalar()
    next_lost = conn.execute(
        select(func.min(lost_events.c.first_seq)).where(
            *_same(lost_events, hole.site, hole.gate, hole.epoch),
            lost_events.c.first_seq > hole.acked_seq,
        )
    ).scalar()
    bounds = [int(b) - 1 for b in (next_stored, next_lost) if b is not None]
    last = max(first, min(bounds, default=hole.max_seq))
    conn.execute(
        insert_ignore(conn.dialect.name, lost_events).values(
            site=hole.site, gate=hole.gate, epoch=hole.epoch, first_seq=first, last_seq=last,
            cause="not_replayed", recorded_at=now,
        )
    )  # fmt: skip
    return first, last


def store_snapshot(
    conn: Connection, site: str, gate: str, upload: SnapshotUpload, jpeg: bytes, now: datetime
) -> bool:
    """Store a snapshot only if a stored event of this gate names it; False: it is refused.

    So a gate's credentials cannot fill central's database with bytes no event points to.
    """
    named = conn.execute(
        select(events.c.id).where(
            *_same(events, site, gate, upload.epoch),
            events.c.seq == upload.seq,
            events.c.snapshot == upload.name,
        )
    ).first()
    if named is None:
        return False
    conn.execute(
        insert_ignore(conn.dialect.name, snapshots).values(
            site=site, gate=gate, name=upload.name, epoch=upload.epoch, seq=upload.seq,
            jpeg=jpeg, received_at=now,
        )
    )  # fmt: skip
    return True
