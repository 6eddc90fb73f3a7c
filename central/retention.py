"""Purging events and snapshots older than the configured retention."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete

from central.config import RetentionSection
from central.store.tables import events, snapshots

log = logging.getLogger(__name__)


def purge(engine: Engine, retention: RetentionSection, now: datetime) -> dict[str, int]:
    with engine.begin() as conn:
        ev = conn.execute(
            delete(events).where(events.c.received_at < now - timedelta(days=retention.events_days))
        ).rowcount
        sn = conn.execute(
            delete(snapshots).where(
                snapshots.c.received_at < now - timedelta(days=retention.snapshots_days)
            )
        ).rowcount
    return {"events": ev, "snapshots": sn}


async def purge_loop(engine: Engine, retention: RetentionSection, every_s: float = 3600) -> None:
    while True:
        try:
            counts = await asyncio.to_thread(purge, engine, retention, datetime.now(UTC))
            if any(counts.values()):
                log.info("retention purge: %s", counts)
        except Exception:
            log.exception("retention purge failed")
        await asyncio.sleep(every_s)
