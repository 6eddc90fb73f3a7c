"""Purging events and snapshots older than the configured retention, once per cluster.

In bounded batches, each its own short transaction: one DELETE of a million rows would hold
its locks and bloat the WAL for the whole time, and ingest would wait behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, Table, delete, select

from central.config import RetentionSection
from central.leadership import Job, Leadership
from central.store.tables import events, snapshots

log = logging.getLogger(__name__)
PURGE_BATCH = 5000  # rows per transaction
# After each batch the purge waits four times as long as the batch took: it takes at most a
# fifth of the database's time. With a fixed 10 ms pause, ingest ran at 0.56x its rate
# during a purge of 1 M rows (docs/performance.md).
PURGE_YIELD = 4.0


def purge_older(engine: Engine, table: Table, before: datetime, batch: int = PURGE_BATCH) -> int:
    """Delete rows received before `before`, `batch` rows per transaction; returns how many."""
    total = 0
    while True:
        started = time.monotonic()
        ids = select(table.c.id).where(table.c.received_at < before).limit(batch)
        with engine.begin() as conn:
            n = conn.execute(delete(table).where(table.c.id.in_(ids.scalar_subquery()))).rowcount
        total += n
        if n < batch:
            return total
        time.sleep((time.monotonic() - started) * PURGE_YIELD)


def purge(engine: Engine, retention: RetentionSection, now: datetime) -> dict[str, int]:
    return {
        "events": purge_older(engine, events, now - timedelta(days=retention.events_days)),
        "snapshots": purge_older(engine, snapshots, now - timedelta(days=retention.snapshots_days)),
    }


async def purge_loop(
    engine: Engine, retention: RetentionSection, leadership: Leadership, every_s: float = 3600
) -> None:
    while True:
        try:
            if await asyncio.to_thread(leadership.leads, Job.RETENTION):
                counts = await asyncio.to_thread(purge, engine, retention, datetime.now(UTC))
                if any(counts.values()):
                    log.info("retention purge: %s", counts)
        except Exception:
            log.exception("retention purge failed")
        await asyncio.sleep(every_s)
