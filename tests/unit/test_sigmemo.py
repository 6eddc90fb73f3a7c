"""The memory of verified issuer signatures never admits what a fresh check would refuse."""

from __future__ import annotations

from dataclasses import replace

from edge.sigmemo import SignatureMemo
from protocol.epass import SignedPass, parse_pass
from protocol.epass_bound import encode_bound_pass
from tests.unit.livecode_helpers import ISSUER, UNTRUSTED, VISITOR, ed25519_phone


def _signed(n: int = 0) -> SignedPass:
    data = replace(VISITOR, pass_id=n.to_bytes(8, "big"))
    return parse_pass(encode_bound_pass(data, ed25519_phone().device, ISSUER))


def test_remembered_only_for_the_same_key_message_and_signature() -> None:
    memo = SignatureMemo()
    good = _signed()
    assert memo.valid(good, ISSUER.verify_key)
    assert memo.valid(good, ISSUER.verify_key)  # from memory
    tampered = replace(good, message=good.message[:-1] + bytes([good.message[-1] ^ 1]))
    assert not memo.valid(tampered, ISSUER.verify_key)
    assert not memo.valid(good, UNTRUSTED.verify_key)


def test_bounded_least_recently_used() -> None:
    memo = SignatureMemo(size=3)
    passes = [_signed(i) for i in range(5)]
    for p in passes:
        assert memo.valid(p, ISSUER.verify_key)
    assert len(memo._good) == 3
    assert passes[0].signature not in memo._good and passes[4].signature in memo._good
