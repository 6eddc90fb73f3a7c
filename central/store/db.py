"""Engines and migrations: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    make_url,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Insert
from sqlalchemy.sql.schema import Table

from protocol.fsmodes import private_sqlite

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_upgrade_lock = threading.Lock()


def make_engine(url: str) -> Engine:
    """An engine; SQLite files get WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        _private_sqlite_file(make_url(url).database)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _private_sqlite_file(database: str | None) -> None:
    """Create the file 0600 before SQLite opens it, so its -wal and -shm are 0600 too."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.parent.is_dir():  # else leave SQLite to report the missing directory as before
        private_sqlite(path)


def upgrade(engine: Engine, to: str = "head") -> None:
    """Bring the schema to the newest Alembic revision, or to `to` (safe to run from several
    replicas)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _upgrade_lock, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas starting together must not migrate at once.
            conn.execute(text("SELECT pg_advisory_xact_lock(7253101)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, to)


def insert_ignore(engine_or_dialect: str, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for either dialect."""
    if engine_or_dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def keys_in(
    dialect: str, columns: Sequence[Column[Any]], keys: list[tuple[Any, ...]]
) -> ColumnElement[bool]:
    """`(columns) IN keys`. On PostgreSQL the keys go as one array per column, unnested, so
    the statement's text is the same however many keys there are: SQLAlchemy's and psycopg's
    caches hold it, where an IN list of 200 gates' keys was compiled and parsed anew every
    time (25 ms of CPU a statement, most of central's store loop at 1,000 messages/s)."""
    if dialect != "postgresql":
        return tuple_(*columns).in_(keys)
    arrays = [
        bindparam(f"keys_{col.name}", [key[i] for key in keys], type_=postgresql.ARRAY(col.type))
        for i, col in enumerate(columns)
    ]
    unnested = func.unnest(*arrays).table_valued(*(col.name for col in columns)).render_derived()
    return tuple_(*columns).in_(select(*unnested.c))
