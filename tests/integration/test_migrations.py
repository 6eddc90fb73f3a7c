"""The Alembic migrations build exactly the schema tables.py describes, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from central.store.db import make_engine, upgrade
from central.store.tables import metadata
from tests.integration.services import pg_schema


def drift(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        upgrade(engine)  # a second run (another replica starting) changes nothing
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables
    return list(diffs)


def test_sqlite_schema_matches_tables(tmp_path: Path) -> None:
    assert drift(f"sqlite:///{tmp_path / 'c.db'}") == []


def test_postgresql_schema_matches_tables() -> None:
    with pg_schema() as url:
        assert drift(url) == []
