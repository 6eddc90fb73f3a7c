"""The memory of verified issuer signatures never admits what a fresh check would refuse."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edge.decide import Direction, GateContext, Reason, decide
from edge.sigmemo import SignatureMemo, signature_digest
from protocol.epass import SignedPass, key_id_of, parse_pass
from protocol.epass_bound import encode_bound_pass
from tests.unit.decide_helpers import MemoryCache
from tests.unit.livecode_helpers import (
    ISSUER,
    NOW,
    RESIDENT,
    SLOT,
    UNTRUSTED,
    VISITOR,
    ed25519_phone,
    forged_live_code,
)


def _signed(n: int = 0) -> SignedPass:
    data = replace(VISITOR, pass_id=n.to_bytes(8, "big"))
    return parse_pass(encode_bound_pass(data, ed25519_phone().device, ISSUER))


def test_remembered_only_for_the_same_key_message_and_signature() -> None:
    memo = SignatureMemo()
    good = _signed()
    assert not memo.remembered(good, ISSUER.verify_key)
    memo.remember(good, ISSUER.verify_key)
    assert memo.remembered(good, ISSUER.verify_key)
    tampered = replace(good, message=good.message[:-1] + bytes([good.message[-1] ^ 1]))
    assert not memo.remembered(tampered, ISSUER.verify_key)
    assert not memo.remembered(good, UNTRUSTED.verify_key)


def test_bounded_least_recently_used() -> None:
    memo = SignatureMemo(size=3)
    passes = [_signed(i) for i in range(5)]
    for p in passes:
        memo.remember(p, ISSUER.verify_key)
    assert len(memo._good) == 3
    assert passes[0].signature not in memo._good and passes[4].signature in memo._good


def test_the_digest_names_key_signature_and_message_each() -> None:
    good = _signed()
    flip = bytes([good.signature[0] ^ 1]) + good.signature[1:]
    others = [
        signature_digest(good, UNTRUSTED.verify_key),
        signature_digest(replace(good, signature=flip), ISSUER.verify_key),
        signature_digest(replace(good, message=good.message + b"\0"), ISSUER.verify_key),
        # The signature's last byte changed: another triple.
        signature_digest(replace(good, signature=good.signature[:-1] + b"\0"), ISSUER.verify_key),
    ]
    assert signature_digest(good, ISSUER.verify_key) not in others
    assert signature_digest(good, ISSUER.verify_key) == signature_digest(
        _signed(), ISSUER.verify_key
    )


# --- through decide: the memory in the context and the one in the store ---------------------

PHONE = ed25519_phone()
STATIC = encode_bound_pass(RESIDENT, PHONE.device, ISSUER)


def _ctx() -> GateContext:
    # A new context: a new, empty memory, as after a restart.
    return GateContext(site="hutong-12", gate="east", direction=Direction.IN,
                       trusted={key_id_of(ISSUER.verify_key): ISSUER.verify_key})  # fmt: skip


def test_a_forged_pass_is_refused_and_remembered_nowhere() -> None:
    ctx, cache = _ctx(), MemoryCache()
    forged = forged_live_code(PHONE.live(STATIC, RESIDENT.pass_id, SLOT))
    for _ in range(2):  # the second time too: the first refusal left nothing behind
        d = decide(forged, ctx, cache, NOW)
        assert d.reason is Reason.BAD_SIGNATURE
        assert d.signature_digest is None and d.verified_signature() is None
    assert not ctx.verified.remembered(parse_pass(forged), ISSUER.verify_key)


def test_a_remembered_signature_does_not_vouch_for_altered_bytes() -> None:
    ctx, cache = _ctx(), MemoryCache()
    good = PHONE.live(STATIC, RESIDENT.pass_id, SLOT)
    first = decide(good, ctx, cache, NOW)
    assert first.granted and first.signature_digest is not None
    cache.verified.add(first.signature_digest)  # as the journal entry would store it
    forged = forged_live_code(good)  # same issuer signature bytes, other signed bytes
    assert decide(forged, ctx, cache, NOW).reason is Reason.BAD_SIGNATURE
    assert decide(forged, _ctx(), cache, NOW).reason is Reason.BAD_SIGNATURE


def test_the_store_vouches_after_a_restart_and_nothing_is_verified_again() -> None:
    cache = MemoryCache()
    first = decide(PHONE.live(STATIC, RESIDENT.pass_id, SLOT), _ctx(), cache, NOW)
    verified = first.verified_signature()
    assert verified is not None
    assert verified == (first.signature_digest, key_id_of(ISSUER.verify_key), RESIDENT.valid_until)
    cache.verified.add(verified[0])
    again = decide(PHONE.live(STATIC, RESIDENT.pass_id, SLOT + 1), _ctx(), cache, NOW)
    assert again.granted and again.signature_digest is None  # vouched for: nothing new to store


@pytest.mark.parametrize("remembered_in", ["memory", "store"])
def test_a_key_no_longer_trusted_is_refused_though_remembered(remembered_in: str) -> None:
    ctx, cache = _ctx(), MemoryCache()
    first = decide(PHONE.live(STATIC, RESIDENT.pass_id, SLOT), ctx, cache, NOW)
    assert first.signature_digest is not None
    cache.verified.add(first.signature_digest)
    retired = replace(ctx if remembered_in == "memory" else _ctx(), trusted={})
    d = decide(PHONE.live(STATIC, RESIDENT.pass_id, SLOT + 1), retired, cache, NOW)
    assert d.reason is Reason.UNKNOWN_KEY
