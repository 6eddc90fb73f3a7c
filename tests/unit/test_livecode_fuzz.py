"""Mutated device-bound passes and live codes: every one gets a reason, none is granted."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from edge.decide import GateContext, Reason, decide
from protocol.base45 import b45decode, b45encode
from protocol.epass import HolderKind, key_id_of
from protocol.epass_bound import PROOF_LEN, add_proof, encode_bound_pass
from protocol.livecode import live_message
from tests.unit.decide_helpers import MemoryCache
from tests.unit.livecode_helpers import (
    ISSUER,
    NOW,
    RESIDENT,
    SLOT,
    VISITOR,
    ed25519_phone,
    p256_phone,
)

CTX = GateContext(
    site="hutong-12", gate="east", trusted={key_id_of(ISSUER.verify_key): ISSUER.verify_key}
)
PHONES = [ed25519_phone(), p256_phone(), ed25519_phone(bytes(range(7, 39)))]
ATTACKER = ed25519_phone(bytes(32))


def _valid() -> list[tuple[str, str]]:
    """(live code, static text) pairs, both phone key types, with and without optional fields."""
    rng = random.Random(11)
    out = []
    for i in range(12):
        base = VISITOR if i % 2 else RESIDENT
        data = replace(base, pass_id=rng.randbytes(8), kind=list(HolderKind)[i % 6])
        phone = PHONES[i % 3]
        static = encode_bound_pass(data, phone.device, ISSUER)
        out.append((phone.live(static, data.pass_id, SLOT), static))
    return out


VALID = _valid()


def _raw(text: str) -> bytes:
    return b45decode(text[4:])


def _text(raw: bytes, prefix: str = "MJ2:") -> str:
    return prefix + b45encode(raw)


def mutate(live: str, static: str, rng: random.Random) -> str:
    """One way of damaging, forging or replaying a live code."""
    raw, op = _raw(live), rng.randrange(10)
    if op == 0:  # flip one bit anywhere
        i = rng.randrange(len(raw))
        return _text(raw[:i] + bytes([raw[i] ^ (1 << rng.randrange(8))]) + raw[i + 1 :])
    if op == 1:  # flip a bit in the proof only, where only the phone's signature stands guard
        i = len(raw) - rng.randrange(1, PROOF_LEN + 1)
        return _text(raw[:i] + bytes([raw[i] ^ (1 << rng.randrange(8))]) + raw[i + 1 :])
    if op == 2:  # another slot's residue on this proof
        return _text(raw[: -PROOF_LEN] + bytes([(raw[-PROOF_LEN] + rng.randrange(1, 256)) % 256])
                     + raw[-PROOF_LEN + 1 :])  # fmt: skip
    if op == 3:  # another pass's proof, or another phone's proof for this pass and slot
        if rng.randrange(2):
            return _text(raw[:-PROOF_LEN] + _raw(rng.choice(VALID)[0])[-PROOF_LEN:])
        return ATTACKER.live(static, raw[4:12], SLOT)
    if op == 4:  # the attacker's own key swapped into the pass (the issuer signed another one)
        pos = 25
        return _text(raw[:pos] + ATTACKER.device.public + raw[pos + 32 :])
    if op == 5:  # truncate, or cut exactly at the proof
        return live[: rng.randrange(len(live))] if rng.randrange(2) else static
    if op == 6:  # the bytes under the version 1 prefix
        return _text(raw, "MJ1:")
    if op == 7:  # random bytes after a real pass's header
        return _text(raw[: rng.randrange(60)] + rng.randbytes(rng.randrange(0, 150)))
    if op == 8:  # a proof for a slot far from now, signed by the right phone
        phone = next(p for p in PHONES if p.device.public in raw)
        far = SLOT + rng.choice([-1000, -257, -256, -4, 3, 256, 9999])
        return add_proof(static, far, phone.sign(live_message(raw[4:12], far)))
    i = rng.randrange(len(live))  # replace a character
    return live[:i] + rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:ab") + live[i + 1 :]


def run_fuzz(count: int, seed: int) -> dict[Reason, int]:
    rng = random.Random(seed)
    seen: dict[Reason, int] = {}
    for _ in range(count):
        live, static = rng.choice(VALID)
        text = mutate(live, static, rng)
        d = decide(text, CTX, MemoryCache(), NOW)
        seen[d.reason] = seen.get(d.reason, 0) + 1
        if d.granted:
            assert text == live, f"granted a mutated live code: {text!r}"
    return seen


def test_valid_live_codes_are_granted_once() -> None:
    for live, static in VALID:
        cache = MemoryCache()
        d = decide(live, CTX, cache, NOW)
        assert d.granted, d
        assert d.live_slot is not None
        cache.live_used.add((d.pass_id or "", d.live_slot))
        assert decide(live, CTX, cache, NOW).reason is Reason.REPLAYED
        assert decide(static, CTX, MemoryCache(), NOW).reason is Reason.NO_LIVE_CODE


def test_fuzz_100k_mutated_live_codes() -> None:
    seen = run_fuzz(100_000, seed=1)
    assert sum(seen.values()) == 100_000
    # The mutations must reach every layer: parser, issuer, phone signature, slot window.
    for reason in (Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.NO_LIVE_CODE, Reason.STALE_CODE):
        assert seen.get(reason, 0) > 500, seen


@pytest.mark.slow
def test_fuzz_2m_mutated_live_codes() -> None:
    run_fuzz(2_000_000, seed=2)
