"""The texts in tests/qr_frames.py's codes: signed passes and phones' live codes, seeded.

Made with the project's own encoders and fresh keys drawn from the generator, so a frame's
text is what a gate really reads, and the same seed always gives the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from nacl.signing import SigningKey

from protocol.epass import ALL_DAYS, HOLDER_KINDS, PassData, PassTooLargeError, encode_pass
from protocol.epass_bound import add_proof, encode_bound_pass
from protocol.livecode import DeviceAlg, DeviceKey, live_message, slot_of

_SITES = ("s1", "east-garden", "翠苑三区", "hx-07", "明珠花园北区")
_NAMES = ("", "张*华", "李*", "欧阳*明", "W*ng")
_GATES = ("east", "north-1", "b2-garage", "西门", "south")


_NOW = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())


def pass_text(rng: np.random.Generator) -> str:
    """A signed version 1 pass (encode_pass) under a fresh issuer key."""
    key = SigningKey(rng.bytes(32))
    return encode_pass(_pass_data(rng), key)


def _pass_data(rng: np.random.Generator) -> PassData:
    gates = tuple(rng.choice(_GATES, size=int(rng.integers(0, 4)), replace=False))
    return PassData(
        pass_id=rng.bytes(8),
        site=str(rng.choice(_SITES)),
        kind=HOLDER_KINDS[int(rng.integers(len(HOLDER_KINDS)))],
        valid_from=_NOW - int(rng.integers(0, 86400 * 30)),
        valid_until=_NOW + int(rng.integers(3600, 86400 * 365)),
        display_name=str(rng.choice(_NAMES)),
        gates=tuple(str(g) for g in gates),
        max_uses=int(rng.choice([0, 0, 1, 10])),
    )


def live_text(rng: np.random.Generator) -> str:
    """A phone's live code: a device-bound pass for an Ed25519 or P-256 key, and its proof."""
    issuer = SigningKey(rng.bytes(32))
    alg = DeviceAlg.P256 if rng.random() < 0.5 else DeviceAlg.ED25519
    device, sign = _phone_key(rng, alg)
    data = replace(
        _pass_data(rng),
        hours=(480, 1200) if rng.random() < 0.3 else None,
        weekdays=0x1F if rng.random() < 0.3 else ALL_DAYS,
    )
    while True:  # a visitor's many limits may not fit version 10-M: drop gates, then the name
        try:
            static = encode_bound_pass(data, device, issuer)
            break
        except PassTooLargeError:
            fewer = {"gates": data.gates[:-1]} if data.gates else {"display_name": ""}
            data = replace(data, **fewer)
    slot = slot_of(_NOW) + int(rng.integers(0, 8640))
    return add_proof(static, slot, sign(live_message(data.pass_id, slot)))


def _phone_key(
    rng: np.random.Generator, alg: DeviceAlg
) -> tuple[DeviceKey, Callable[[bytes], bytes]]:
    """A phone's key pair from the generator's randomness; P-256 signs deterministically."""
    if alg is DeviceAlg.ED25519:
        ed = SigningKey(rng.bytes(32))
        return DeviceKey(alg, bytes(ed.verify_key)), lambda m: ed.sign(m).signature
    key = ec.derive_private_key(int.from_bytes(rng.bytes(31), "big") + 1, ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )

    def sign(message: bytes) -> bytes:
        der = key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = utils.decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return DeviceKey(alg, public), sign
