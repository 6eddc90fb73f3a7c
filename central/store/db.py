"""Engines and migrations: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
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


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (safe to run from several replicas)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _upgrade_lock, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas starting together must not migrate at once.
            conn.execute(text("SELECT pg_advisory_xact_lock(7253101)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def insert_ignore(engine_or_dialect: str, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for either dialect."""
    if engine_or_dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()
