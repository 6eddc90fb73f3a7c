"""Migration 0010 on a database that already holds passes, on SQLite and PostgreSQL: phone
passes bound before it get version 0 (in a snapshot's hints, never a delta's), printed ones
none, and the site's hints are then what a gate's snapshot carries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from central.store import sync_store
from central.store.db import make_engine, upgrade
from central.store.tables import passes
from tests.integration.services import pg_schema

NOW = datetime.now(UTC).replace(microsecond=0)
PHONE_TEXT = "MJ2:" + "0" * 40  # of the alphabet the wire admits
ROWS = {"00000000000000b1": PHONE_TEXT, "00000000000000a1": "MJ1:" + "1" * 40}


@pytest.fixture(params=["sqlite", "postgresql"])
def at_0009(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = nullcontext(f"sqlite:///{tmp_path / 'central.db'}")
    with pg_schema() if request.param == "postgresql" else url as db_url:
        engine = make_engine(db_url)
        upgrade(engine, "0009")
        yield engine
        engine.dispose()


def test_passes_bound_before_the_migration_are_hinted_in_a_snapshot(at_0009: Engine) -> None:
    with at_0009.begin() as conn:
        for pass_id, text in ROWS.items():
            conn.execute(passes.insert().values(
                pass_id=pass_id, site="hutong-12", holder="张三华", display_name="张*华",
                kind="resident", valid_from=NOW - timedelta(days=1),
                valid_until=NOW + timedelta(days=30), gates=[], max_uses=0, key_id="00000000",
                text=text, issued_at=NOW, issued_by="admin",
            ))  # fmt: skip
    upgrade(at_0009)
    with at_0009.begin() as conn:
        sync_store.revoke(conn, "00000000000000ff", "lost", NOW)  # a gate synced at version 1
        stamped = dict(conn.execute(select(passes.c.pass_id, passes.c.bound_version)).all())
        snapshot = sync_store.delta_since(conn, 0, 100, passes_of="hutong-12", now=NOW)
        delta = sync_store.delta_since(conn, 1, 100, passes_of="hutong-12", now=NOW)
    assert stamped == {"00000000000000b1": 0, "00000000000000a1": None}
    assert snapshot.passes == [PHONE_TEXT]
    assert not delta.snapshot and delta.passes == []
