"""Any string at the gate gets a reason, never an exception and never a wrongful grant."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from edge.decide import GateContext, Reason, decide
from protocol.base45 import ALPHABET, b45decode, b45encode
from protocol.epass import HolderKind, PassData, encode_pass, key_id_of
from tests.unit.decide_helpers import MemoryCache

KEY = SigningKey(bytes(range(32)))
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
CTX = GateContext(site="s1", gate="g1", trusted={key_id_of(KEY.verify_key): KEY.verify_key})


def _valid_passes() -> list[str]:
    rng = random.Random(7)
    passes = []
    for i in range(16):
        data = PassData(
            pass_id=rng.randbytes(8),
            site="s1",
            kind=list(HolderKind)[i % 6],
            valid_from=int((NOW - timedelta(days=1)).timestamp()),
            valid_until=int((NOW + timedelta(days=1)).timestamp()),
            display_name="张*华" if i % 2 else "",
            gates=("g1",) if i % 3 else (),
            max_uses=i,
        )
        passes.append(encode_pass(data, KEY))
    return passes


VALID = _valid_passes()


def mutate(text: str, rng: random.Random) -> str:
    """One of the ways a pass text gets damaged or forged."""
    op = rng.randrange(9)
    raw = b45decode(text[4:])
    if op == 0:  # flip one bit in the payload or signature, re-encoded so base45 is fine
        i = rng.randrange(len(raw))
        flipped = raw[:i] + bytes([raw[i] ^ (1 << rng.randrange(8))]) + raw[i + 1 :]
        return "MJ1:" + b45encode(flipped)
    if op == 1:  # truncate
        return text[: rng.randrange(len(text))]
    if op == 2:  # replace a character
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(ALPHABET + "abc\x00é\n") + text[i + 1 :]
    if op == 3:  # insert a character
        i = rng.randrange(len(text) + 1)
        return text[:i] + rng.choice(ALPHABET) + text[i:]
    if op == 4:  # splice another pass's signature
        other = b45decode(rng.choice(VALID)[4:])
        return "MJ1:" + b45encode(raw[:-64] + other[-64:])
    if op == 5:  # random bytes, well-formed base45
        return "MJ1:" + b45encode(rng.randbytes(rng.randrange(0, 220)))
    if op == 6:  # huge input
        return text * rng.randrange(2, 50)
    if op == 7:  # binary garbage as text
        return rng.randbytes(rng.randrange(0, 400)).decode("latin-1")
    # op 8: change the length byte of a field so it runs into the signature
    i = 29 + rng.randrange(3)
    return "MJ1:" + b45encode(raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :])


def run_fuzz(count: int, seed: int) -> dict[Reason, int]:
    rng = random.Random(seed)
    cache = MemoryCache()
    seen: dict[Reason, int] = {}
    for _ in range(count):
        original = rng.choice(VALID)
        text = mutate(original, rng)
        d = decide(text, CTX, cache, NOW)
        seen[d.reason] = seen.get(d.reason, 0) + 1
        if d.granted:
            assert text == original, f"granted a mutated pass: {text!r}"
    return seen


def test_valid_passes_are_granted() -> None:
    for text in VALID:
        assert decide(text, CTX, MemoryCache(), NOW).granted


def test_fuzz_100k_mutated_passes() -> None:
    seen = run_fuzz(100_000, seed=1)
    assert sum(seen.values()) == 100_000
    # The mutations must really reach the deep checks, or this test proves little.
    for reason in (Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.UNKNOWN_KEY):
        assert seen.get(reason, 0) > 300, seen


@pytest.mark.slow
def test_fuzz_2m_mutated_passes() -> None:
    run_fuzz(2_000_000, seed=2)


@settings(max_examples=500)
@given(st.text(max_size=400) | st.binary(max_size=400).map(lambda b: b.decode("latin-1")))
def test_any_text_is_denied_without_exception(text: str) -> None:
    d = decide(text, CTX, MemoryCache(), NOW)
    assert not d.granted
    assert d.reason in (Reason.MALFORMED, Reason.UNKNOWN_KEY, Reason.BAD_SIGNATURE)


@settings(max_examples=500)
@given(st.binary(max_size=250))
def test_any_well_formed_base45_payload_is_denied(raw: bytes) -> None:
    d = decide("MJ1:" + b45encode(raw), CTX, MemoryCache(), NOW)
    assert not d.granted
