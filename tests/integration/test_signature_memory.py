"""The store's memory of verified issuer signatures: written with the journal entry, kept across
restarts, never for a forged pass, and forgotten for keys the gate no longer trusts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from edge.cache import GateCache
from edge.config import load_gate_settings
from edge.decide import Decision, Direction, GateContext, Reason, decide
from edge.live_policy import PolicyHolder, PolicyKeeper
from protocol.epass import key_id_of
from protocol.epass_bound import encode_bound_pass
from protocol.messages import EventType
from protocol.policy import PolicyDocument, PublicKey, sign_policy
from tests.integration.agent_helpers import write_config
from tests.unit.livecode_helpers import (
    ISSUER,
    NOW,
    RESIDENT,
    SLOT,
    UNTRUSTED,
    ed25519_phone,
    forged_live_code,
)

PHONE = ed25519_phone()
STATIC = encode_bound_pass(RESIDENT, PHONE.device, ISSUER)
ISSUER_ID = key_id_of(ISSUER.verify_key)
# Another issuer's pass for the same phone (its own pass id, so not a replay of the first).
OTHER = replace(RESIDENT, pass_id=bytes(8))
OTHER_TEXT = encode_bound_pass(OTHER, PHONE.device, UNTRUSTED)


def _ctx(*keys: Any) -> GateContext:
    trusted = {key_id_of(k.verify_key): k.verify_key for k in keys or (ISSUER,)}
    return GateContext(site="hutong-12", gate="east", direction=Direction.IN, trusted=trusted)


def _present(cache: GateCache, text: str, ctx: GateContext) -> Decision:
    """Decide and journal as the agent does (edge/gate.py)."""
    d = decide(text, ctx, cache, NOW)
    cache.journal_append(EventType.DECISION, NOW, granted=d.granted, reason=d.reason.value,
                         pass_id=d.pass_id, live_slot=d.live_slot if d.granted else None,
                         verified=d.verified_signature())  # fmt: skip
    return d


def _rows(cache: GateCache) -> list[tuple[Any, ...]]:
    return cache.db.execute("SELECT key_id, valid_until FROM verified_signatures").fetchall()


def test_a_verified_signature_is_remembered_across_a_restart(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    assert _present(cache, PHONE.live(STATIC, RESIDENT.pass_id, SLOT), _ctx()).granted
    assert _rows(cache) == [(ISSUER_ID, RESIDENT.valid_until)]
    cache.close()
    again = GateCache(tmp_path / "g.db")
    d = _present(again, PHONE.live(STATIC, RESIDENT.pass_id, SLOT + 1), _ctx())
    assert d.granted and d.signature_digest is None  # the store vouched: not verified again
    assert len(_rows(again)) == 1
    again.close()


def test_a_forged_pass_leaves_no_row(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    forged = forged_live_code(PHONE.live(STATIC, RESIDENT.pass_id, SLOT))
    assert _present(cache, forged, _ctx()).reason is Reason.BAD_SIGNATURE
    assert _rows(cache) == []
    # And a row for the genuine pass does not let the forgery through.
    assert _present(cache, PHONE.live(STATIC, RESIDENT.pass_id, SLOT), _ctx()).granted
    assert _present(cache, forged_live_code(PHONE.live(STATIC, RESIDENT.pass_id, SLOT + 1)),
                    _ctx()).reason is Reason.BAD_SIGNATURE  # fmt: skip
    assert len(_rows(cache)) == 1
    cache.close()


def test_an_untrusted_keys_signatures_are_forgotten(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    both = _ctx(ISSUER, UNTRUSTED)
    for text, data in ((STATIC, RESIDENT), (OTHER_TEXT, OTHER)):
        assert _present(cache, PHONE.live(text, data.pass_id, SLOT), both).granted
    assert cache.forget_signatures({ISSUER_ID: ISSUER.verify_key}) == 1
    assert _rows(cache) == [(ISSUER_ID, RESIDENT.valid_until)]
    # Trusted anew (in a process started after the forgetting, so a fresh in-memory memo), the
    # key's passes are verified afresh: the store no longer vouches for them.
    d = _present(cache, PHONE.live(OTHER_TEXT, OTHER.pass_id, SLOT + 1), _ctx(ISSUER, UNTRUSTED))
    assert d.granted and d.signature_digest is not None
    cache.close()


class _NoJournal:
    def append(self, event_type: EventType, **fields: Any) -> int:
        return 0


def test_the_gate_forgets_at_start_the_keys_its_config_no_longer_trusts(tmp_path: Path) -> None:
    settings = load_gate_settings(write_config(tmp_path, ISSUER, {}, {"site": "hutong-12"}))
    cache = GateCache(tmp_path / "g.db")
    for text, data in ((STATIC, RESIDENT), (OTHER_TEXT, OTHER)):
        _present(cache, PHONE.live(text, data.pass_id, SLOT), _ctx(ISSUER, UNTRUSTED))
    assert len(_rows(cache)) == 2
    PolicyKeeper(settings, cache, PolicyHolder(settings.context()), _NoJournal())
    assert _rows(cache) == [(ISSUER_ID, RESIDENT.valid_until)]
    cache.close()


def test_a_policy_that_stops_trusting_a_key_forgets_its_signatures_at_once(
    tmp_path: Path,
) -> None:
    """At run time, not only at start: the keeper applies a signed document trusting ISSUER
    alone, and UNTRUSTED's row is gone from the store in the same call."""
    policy_key = SigningKey(bytes(range(7, 39)))
    config = write_config(tmp_path, ISSUER, {}, {"site": "hutong-12"})
    pinned = {"key_id": key_id_of(policy_key.verify_key).hex(),
              "public_key": bytes(policy_key.verify_key).hex()}  # fmt: skip
    config.write_text(config.read_text(encoding="utf-8").replace("[[keys.trusted]]",
        "[[keys.policy]]\n" + "".join(f'{k} = "{v}"\n' for k, v in pinned.items())
        + "\n[[keys.trusted]]", 1), encoding="utf-8")  # fmt: skip
    settings = load_gate_settings(config)
    cache = GateCache(tmp_path / "g.db")
    keeper = PolicyKeeper(settings, cache, PolicyHolder(settings.context()), _NoJournal())
    for text, data in ((STATIC, RESIDENT), (OTHER_TEXT, OTHER)):
        _present(cache, PHONE.live(text, data.pass_id, SLOT), _ctx(ISSUER, UNTRUSTED))
    assert len(_rows(cache)) == 2
    doc = PolicyDocument.model_validate({
        "site": "hutong-12", "gate": "east", "version": 1,
        "issued_at": datetime.now(UTC), "trusted_keys": [PublicKey.of(ISSUER.verify_key)],
    })  # fmt: skip
    assert keeper.offer(sign_policy(doc, policy_key).model_dump_json().encode())
    assert _rows(cache) == [(ISSUER_ID, RESIDENT.valid_until)]
    cache.close()


def test_prune_forgets_the_signatures_of_long_expired_passes(tmp_path: Path) -> None:
    cache = GateCache(tmp_path / "g.db")
    _present(cache, PHONE.live(STATIC, RESIDENT.pass_id, SLOT), _ctx())
    cache.prune(now=RESIDENT.valid_until + 3600)  # within the grace: kept
    assert len(_rows(cache)) == 1
    cache.prune(now=RESIDENT.valid_until + 2 * 86_400)
    assert _rows(cache) == []
    cache.close()
