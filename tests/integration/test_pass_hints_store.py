"""The pre-verifier against a real gate store: what it remembers a decision trusts (from the
mirror and after a restart); a key dropped meanwhile leaves no row; a full queue drops."""

from __future__ import annotations

from pathlib import Path

from edge.cache import GateCache
from edge.decide import Direction, GateContext, decide
from edge.pass_hints import MAX_QUEUED, PassHints
from protocol.epass import key_id_of
from protocol.epass_bound import encode_bound_pass
from tests.unit.livecode_helpers import ISSUER, NOW, RESIDENT, SLOT, ed25519_phone

PHONE = ed25519_phone()
STATIC = encode_bound_pass(RESIDENT, PHONE.device, ISSUER)
TRUSTED = {key_id_of(ISSUER.verify_key): ISSUER.verify_key}


def _ctx(trusted: bool = True) -> GateContext:
    """A new context, with an empty in-memory memo of its own (as after a restart)."""
    return GateContext("hutong-12", "east", TRUSTED if trusted else {}, Direction.IN)


def _rows(cache: GateCache) -> int:
    return int(cache.db.execute("SELECT count(*) FROM verified_signatures").fetchone()[0])


def test_a_hint_spares_the_first_live_code_its_issuer_verify(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    ctx = _ctx()
    hints = PassHints(cache, lambda: ctx, clock=NOW.timestamp)
    assert hints.check_batch([STATIC, STATIC]) == 1 and hints.known == 1
    assert hints.check_batch([STATIC]) == 0 and hints.known == 2  # remembered: not again
    live = PHONE.live(STATIC, RESIDENT.pass_id, SLOT)
    d = decide(live, _ctx(), cache, NOW)  # only the store knows the signature
    assert d.granted and d.signature_digest is None
    cache.close()
    again = GateCache(tmp_path / "g.db")
    d = decide(PHONE.live(STATIC, RESIDENT.pass_id, SLOT + 1), _ctx(), again, NOW)
    assert d.granted and d.signature_digest is None
    again.close()


def test_a_key_dropped_during_the_batch_leaves_no_row(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    contexts = iter([_ctx(), _ctx(trusted=False)])  # a policy applied between check and write
    hints = PassHints(cache, lambda: next(contexts), clock=NOW.timestamp)
    assert hints.check_batch([STATIC]) == 0
    assert _rows(cache) == 0
    cache.close()


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    hints = PassHints(cache, _ctx)  # not started: nothing is taken off the queue
    hints.offer([STATIC] * (MAX_QUEUED + 7))
    assert hints.counters()["pass_hints_dropped"] == 7
    cache.close()


def test_the_trusted_keys_are_asked_inside_the_store_transaction(tmp_path: Path) -> None:
    # A policy swaps its context before it forgets a dropped key's rows: asked inside the
    # transaction (under the store's lock), the keys cannot be read before a swap and the row
    # written after the forgetting.
    cache = GateCache(tmp_path / "g.db")
    asked_in_transaction: list[bool] = []

    def trusted() -> dict[bytes, object]:
        asked_in_transaction.append(cache.db.conn.in_transaction)
        return dict(TRUSTED)

    assert cache.remember_signatures([(b"d" * 32, next(iter(TRUSTED)), None)], trusted) == 1
    assert asked_in_transaction == [True]
    assert cache.remember_signatures([(b"e" * 32, b"\0" * 4, None)], trusted) == 0
    assert _rows(cache) == 1
    cache.close()
