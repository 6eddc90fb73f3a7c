"""Central on PostgreSQL at district scale (#15): CPU per stored event, event queries on millions
of rows, and a retention purge of a million rows while ingest goes on.

1. CPU: a real `menjin central serve` on a fresh PostgreSQL schema stores `--cpu-events`
   journal entries (EventBatch messages of `--per-message`) from a private Mosquitto; its
   utime+stime from /proc/<pid>/stat over the run, per stored event. Raw baseline, same run: a
   plain psycopg `executemany` of the same rows into a copy of the events table, 200 rows per
   transaction (central's transaction size), this process's own CPU per row.
2. Queries: `--rows` events made by INSERT ... SELECT generate_series in the same schema, then
   the event list's own query function (central.routes.events._page, what GET /api/v1/events
   runs) for several filters; p50/p95 over `--queries` runs each.
3. Purge: ingest rate for a burst without a purge, then for the same burst while
   central.retention.purge deletes `--purge-rows` expired rows in its bounded batches.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from _stack import Mosquitto, cpu_seconds, percentile, print_load, print_machine
from bench_ingest_burst import burst, messages, register, run_central_on, stored_count
from sqlalchemy import Engine, text

from central.config import RetentionSection
from central.retention import purge
from central.routes.events import EventFilter, _page
from central.store.db import make_engine, upgrade
from protocol.messages import EventType
from tests.integration.services import pg_schema

SITE = "burst"


def raw_insert_cpu(db_url: str, items: list[tuple[str, bytes]]) -> float:
    """This process's CPU seconds for a plain executemany of the burst's rows, 200 a commit."""
    from protocol.messages import EventBatch

    rows = []
    now = datetime.now(UTC)
    for _, payload in items:
        b = EventBatch.model_validate_json(payload)
        for e in b.events:
            rows.append((b.site, b.gate, e.epoch, e.seq, e.type.value, e.at, 0, now, e.granted,
                         e.reason, e.pass_id, "{}"))  # fmt: skip
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
        conn.commit()
        started = time.process_time()
        with conn.cursor() as cur:
            for i in range(0, len(rows), 200):
                cur.executemany(
                    "INSERT INTO raw_events (site, gate, epoch, seq, type, at, at_offset_min,"
                    " received_at, granted, reason, pass_id, details)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    rows[i : i + 200],
                )
                conn.commit()
        return time.process_time() - started


def cpu_run(workdir: Path, broker: Mosquitto, db_url: str, args: argparse.Namespace) -> None:
    items = messages(args.gates, args.cpu_events, args.per_message)
    register(db_url, args.gates)
    proc = run_central_on(workdir, broker, db_url)
    try:
        time.sleep(3.0)
        before = cpu_seconds(proc.pid)
        started = time.monotonic()
        for p in burst(broker.port, items, args.publishers):
            p.join()
        expected = args.gates * (args.cpu_events // args.gates)
        while stored_count(db_url) < expected and time.monotonic() < started + 900:
            time.sleep(0.1)
        took = time.monotonic() - started
        used = cpu_seconds(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(30)
    raw = raw_insert_cpu(db_url, items)
    print(f"cpu: central stored {expected} events in {took:.1f} s, CPU {used:.2f} s ="
          f" {used / expected * 1e6:.0f} us/event; raw executemany {raw / expected * 1e6:.0f}"
          f" us/event; ratio {used / raw:.2f}x")  # fmt: skip


def fill(engine: Engine, rows: int, old: bool = False) -> float:
    """INSERT ... SELECT generate_series: `rows` events over 50 sites x 7 gates, one a second
    up to now (ids rise with time, as ingest makes them); returns seconds."""
    started = time.monotonic()
    received = "now() - interval '400 days'" if old else "now()"
    epoch = 2 if old else 1
    with engine.begin() as conn:
        conn.execute(text(f"""
            INSERT INTO events (site, gate, epoch, seq, type, at, at_offset_min, received_at,
                                granted, reason, pass_id, details)
            SELECT 'q' || (g % 50), 'g' || (g % 7), {epoch}, g,
                   CASE WHEN g % 1000 = 0 THEN 'door_forced' ELSE 'decision' END,
                   now() - make_interval(secs => {rows} - g), 480, {received}, g % 10 <> 0,
                   CASE WHEN g % 10 = 0 THEN 'revoked' ELSE 'ok' END,
                   'P' || lpad((g % 20000)::text, 7, '0'), '{{}}'
            FROM generate_series(1, {rows}) AS g"""))  # fmt: skip
        conn.execute(text("ANALYZE events"))
    return time.monotonic() - started


QUERIES = {
    "newest 100": EventFilter(),
    "one gate": EventFilter(site="q7", gate="g3"),
    "one pass": EventFilter(pass_id="P0001234"),
    "door_forced (rare)": EventFilter(type=EventType.DOOR_FORCED),
    "denied at one site": EventFilter(site="q7", granted=False),
    "one gate, no site": EventFilter(gate="g3"),
    "denied": EventFilter(granted=False),
    "reason revoked": EventFilter(reason="revoked"),
    "one day": EventFilter(
        since=datetime.now(UTC) - timedelta(days=3), until=datetime.now(UTC) - timedelta(days=2)
    ),
}


def query_run(db_url: str, args: argparse.Namespace) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        print(f"queries: {args.rows} rows made in {fill(engine, args.rows):.0f} s")
        for name, flt in QUERIES.items():
            times = []
            for _ in range(args.queries):
                started = time.perf_counter()
                _page(engine, flt, None, 100)
                times.append((time.perf_counter() - started) * 1000)
            print(f"  {name:22s} p50 {percentile(times, 0.5):7.1f} ms"
                  f"  p95 {percentile(times, 0.95):7.1f} ms")  # fmt: skip
    finally:
        engine.dispose()


def ingest_rate(workdir: Path, broker: Mosquitto, db_url: str, args: argparse.Namespace,
                epoch_offset: int, during: threading.Thread | None) -> float:  # fmt: skip
    items = messages(args.gates, args.purge_burst, args.per_message, epoch=epoch_offset)
    started = time.monotonic()
    if during is not None:
        during.start()
    for p in burst(broker.port, items, args.publishers):
        p.join()
    expected = args.gates * (args.purge_burst // args.gates)
    while epoch_count(db_url, epoch_offset) < expected and time.monotonic() < started + 900:
        time.sleep(0.1)
    return epoch_count(db_url, epoch_offset) / (time.monotonic() - started)


def epoch_count(db_url: str, epoch: int) -> int:
    """Events of one burst (the purge deletes others meanwhile, so a total would not do)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM events WHERE epoch = :e"), {"e": epoch})
            return int(n.scalar_one())
    finally:
        engine.dispose()


def purge_run(workdir: Path, broker: Mosquitto, db_url: str, args: argparse.Namespace) -> None:
    engine = make_engine(db_url)
    register(db_url, args.gates)
    proc = run_central_on(workdir, broker, db_url)
    try:
        time.sleep(3.0)
        # Made before the baseline, so both bursts meet the same table (size, autovacuum).
        made = fill(engine, args.purge_rows, old=True)
        print(f"purge: {args.purge_rows} expired rows made in {made:.0f} s")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE events"))
            conn.execute(text("CHECKPOINT"))
        alone = ingest_rate(workdir, broker, db_url, args, 11, None)
        took: list[float] = []

        def run_purge() -> None:
            t = time.monotonic()
            purge(engine, RetentionSection(events_days=365), datetime.now(UTC))
            took.append(time.monotonic() - t)

        purger = threading.Thread(target=run_purge)
        during = ingest_rate(workdir, broker, db_url, args, 12, purger)
        purger.join()
    finally:
        proc.terminate()
        proc.wait(30)
        engine.dispose()
    print(f"  ingest alone {alone:.0f} events/s; during the purge {during:.0f} events/s"
          f" ({during / alone:.2f}x); purge took {took[0]:.1f} s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--cpu-events", type=int, default=50_000)
    ap.add_argument("--per-message", type=int, default=50)
    ap.add_argument("--gates", type=int, default=50)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--purge-rows", type=int, default=1_000_000)
    ap.add_argument("--purge-burst", type=int, default=50_000)
    ap.add_argument("--only", choices=["cpu", "queries", "purge"], default=None)
    args = ap.parse_args()
    print_machine(sys.argv, vars(args))
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        try:
            for phase in ("cpu", "queries", "purge"):
                if args.only not in (None, phase):
                    continue
                with pg_schema() as db_url:
                    work = Path(tmp) / phase
                    work.mkdir()
                    if phase == "cpu":
                        cpu_run(work, broker, db_url, args)
                    elif phase == "queries":
                        query_run(db_url, args)
                    else:
                        purge_run(work, broker, db_url, args)
        finally:
            broker.stop()
    print_load("at end")
    os.sync()


if __name__ == "__main__":
    main()
