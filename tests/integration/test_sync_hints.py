"""delta_since with a site's device-bound passes, on SQLite and PostgreSQL: per site, after
`since`, newest first, capped, without revoked or expired passes."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine

from central.config import IngestSection
from central.ingest import replies
from central.ingest.replies import _Deltas
from central.ingest_check import Parsed
from central.store import sync_store
from central.store.tables import passes
from protocol.messages import MAX_HINTED_PASSES, SyncDelta, SyncRequest
from tests.integration import test_ingest_rows

engine = test_ingest_rows.engine  # the fixture: SQLite and PostgreSQL
NOW = datetime.now(UTC).replace(microsecond=0)


def _pass(conn: Connection, n: int, site: str = "hutong-12", days: int = 30) -> str:
    """A stored pass waiting for its phone; its id."""
    pass_id = f"{n:016x}"
    conn.execute(passes.insert().values(
        pass_id=pass_id, site=site, holder="张三华", display_name="张*华", kind="resident",
        valid_from=NOW - timedelta(days=60), valid_until=NOW + timedelta(days=days), gates=[],
        max_uses=0, key_id="00000000", text="", issued_at=NOW, issued_by="admin",
    ))  # fmt: skip
    return pass_id


def _bind(conn: Connection, n: int, site: str = "hutong-12", days: int = 30) -> tuple[str, int]:
    """A pass bound to a phone: its (text, version)."""
    text = f"MJ2:{n:08d}"
    return text, sync_store.bind_pass(conn, _pass(conn, n, site, days), text)


def test_a_site_gets_its_passes_bound_after_since_newest_first(engine: Engine) -> None:
    with engine.begin() as conn:
        first, v1 = _bind(conn, 1)
        _bind(conn, 2, site="elsewhere")
        second, v2 = _bind(conn, 3)
        _pass(conn, 4)  # printed, or waiting for its phone: never sent
        delta = sync_store.delta_since(conn, v1, 100, passes_of="hutong-12", now=NOW)
        assert (delta.snapshot, delta.version, delta.passes) == (False, v2, [second])
        whole = sync_store.delta_since(conn, 0, 100, passes_of="hutong-12", now=NOW)
        assert whole.snapshot and whole.passes == [second, first]
        assert sync_store.delta_since(conn, v2, 100, passes_of="hutong-12").passes == []
        assert sync_store.delta_since(conn, 0, 100, passes_of="nowhere").passes == []


def test_binding_bumps_the_version_a_revocation_does(engine: Engine) -> None:
    with engine.begin() as conn:
        _, bound = _bind(conn, 1)
        revoked = sync_store.revoke(conn, f"{9:016x}", "lost", NOW)
        assert revoked == bound + 1 == sync_store.current_version(conn)


def test_revoked_and_expired_passes_are_left_out(engine: Engine) -> None:
    with engine.begin() as conn:
        kept, _ = _bind(conn, 1)
        _bind(conn, 2, days=-1)
        _, v3 = _bind(conn, 3)
        sync_store.revoke(conn, f"{3:016x}", "lost phone", NOW)
        for since in (0, v3 - 1):
            delta = sync_store.delta_since(conn, since, 100, passes_of="hutong-12", now=NOW)
            assert delta.passes == ([kept] if since == 0 else [])
        assert [r.pass_id for r in delta.revoked] == [f"{3:016x}"]


def test_at_most_the_cap_newest_first(engine: Engine) -> None:
    with engine.begin() as conn:
        texts = [_bind(conn, n)[0] for n in range(MAX_HINTED_PASSES + 5)]
        delta = sync_store.delta_since(conn, 0, 100, passes_of="hutong-12", now=NOW)
    assert delta.passes == texts[::-1][:MAX_HINTED_PASSES]


def test_a_gate_that_did_not_ask_gets_the_json_of_before(engine: Engine) -> None:
    with engine.begin() as conn:
        _bind(conn, 1)
        delta = sync_store.delta_since(conn, 0, 100)
    assert delta.passes == []
    assert list(json.loads(delta.model_dump_json())) == [
        "v", "version", "snapshot", "revoked", "unrevoked",
    ]  # fmt: skip


def test_a_stored_text_out_of_the_wire_bounds_is_left_out(engine: Engine) -> None:
    with engine.begin() as conn:
        kept, _ = _bind(conn, 1)
        sync_store.bind_pass(conn, _pass(conn, 2), "MJ2:" + "0" * 300)  # the gate would refuse
        sync_store.bind_pass(conn, _pass(conn, 3), "MJ2:lower")
        delta = sync_store.delta_since(conn, 0, 100, passes_of="hutong-12", now=NOW)
    assert delta.passes == [kept]
    SyncDelta.model_validate_json(delta.model_dump_json())


def test_one_transaction_answers_each_site_with_its_own_passes(engine: Engine) -> None:
    with engine.begin() as conn:
        ours, _ = _bind(conn, 1)
        theirs, _ = _bind(conn, 2, site="elsewhere")
    with engine.connect() as conn:
        deltas = _Deltas(conn, 100)
        plain = deltas.json(0, None)
        assert json.loads(deltas.json(0, "hutong-12"))["passes"] == [ours]
        assert json.loads(deltas.json(0, "elsewhere"))["passes"] == [theirs]
        assert deltas.json(0, "nowhere") == plain and "passes" not in json.loads(plain)


class _Published:
    """Stands in for central's broker link: what the replies would publish."""

    def __init__(self) -> None:
        self.payloads: list[str] = []

    def publish(self, topic: str, payload: str) -> None:
        self.payloads.append(payload)


def test_a_delta_too_large_with_its_hints_goes_without_them(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        for n in range(1, 6):
            _bind(conn, n)
        sync_store.revoke(conn, f"{99:016x}", "lost", NOW)
        plain = sync_store.delta_since(conn, 0, 100).model_dump_json()
    # The hints push the delta past the broker's limit; the revocations alone fit.
    monkeypatch.setattr(replies, "MAX_MESSAGE_BYTES", len(plain) + 10)
    counts: Counter[str] = Counter()
    link = _Published()
    answer = replies.Replies(link, engine, IngestSection(), counts)  # type: ignore[arg-type]
    answer.answer([Parsed("hutong-12", "east", "syncreq", SyncRequest(since=0, passes=True))])
    assert link.payloads == [plain]  # the revocations went; only the hints were left out
    assert counts["delta_hints_left_out"] == 1 and counts["delta_too_large"] == 0
