"""The gate's replay memory for live codes: written with the grant, kept across restarts,
bounded by age and count."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edge.cache import GateCache, Retention
from protocol.messages import EventType

AT = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def grant(cache: GateCache, pass_id: str, slot: int, at: datetime = AT) -> None:
    cache.journal_append(EventType.DECISION, at, granted=True, reason="ok", pass_id=pass_id,
                         use=("east", "in", None), live_slot=slot)  # fmt: skip


def test_a_granted_code_is_remembered_across_a_restart(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    grant(cache, "0123456789abcdef", 100)
    cache.journal_append(EventType.DECISION, AT, granted=False, reason="fever",
                         pass_id="1111111111111111")  # fmt: skip
    cache.close()
    again = GateCache(tmp_path / "g.db")
    assert again.live_code_used("0123456789abcdef", 100)
    assert not again.live_code_used("0123456789abcdef", 101)
    assert not again.live_code_used("1111111111111111", 100)  # only grants are remembered
    again.close()


def test_memory_is_bounded_by_age_and_count(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db", Retention(live_code_memory_s=3600, max_live_codes=5))
    for slot in range(8):
        grant(cache, f"{slot:016x}", slot, datetime.fromtimestamp(AT.timestamp() + slot, UTC))
    counts = cache.prune(now=AT.timestamp() + 10)
    assert counts["live_codes"] == 3
    assert not cache.live_code_used(f"{0:016x}", 0)  # the oldest went first
    assert cache.live_code_used(f"{7:016x}", 7)
    assert cache.prune(now=AT.timestamp() + 7200)["live_codes"] == 5
    cache.close()
