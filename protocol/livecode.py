"""The phone's side of a device-bound pass: its key, its proof for a time slot, and the window.

A slot is SLOT_S seconds of Unix time. The phone signs (pass id, slot) with a key that never
leaves it; the code carries only the slot mod 256, and the gate takes the slot with that residue
nearest its own clock, so the proof is small and still names one absolute slot.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

PREFIX = "MJ2:"
LIVE_CONTEXT = b"MJ2L"
SLOT_S = 10
LIVE_MAX_AGE_S = 30  # no gate accepts a code whose slot began longer ago than this
SLOT_RESIDUE = 256
SITE_CODE_LEN = 4
GATE_CODE_LEN = 3
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class DeviceAlg(StrEnum):
    """The phone's key type: WebCrypto Ed25519 where the browser has it, P-256 otherwise."""

    ED25519 = "ed25519"
    P256 = "p256"

    @property
    def public_len(self) -> int:
        return 32 if self is DeviceAlg.ED25519 else 33


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """A phone's public key: 32 raw Ed25519 bytes or a 33-byte compressed P-256 point."""

    alg: DeviceAlg
    public: bytes

    def well_formed(self) -> bool:
        """Length and point prefix only; whether a P-256 point is on the curve shows at verify."""
        if len(self.public) != self.alg.public_len:
            return False
        return self.alg is DeviceAlg.ED25519 or self.public[0] in (2, 3)

    def check(self) -> None:
        """Refuse a key no issuer may bind (ValueError): wrong size or not a curve point."""
        if not self.well_formed():
            raise ValueError(f"a {self.alg} device key is {self.alg.public_len} bytes")
        if self.alg is DeviceAlg.P256:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.public)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when signature (64 bytes; r||s for P-256) is this key's over message."""
        if len(signature) != 64:
            return False
        if self.alg is DeviceAlg.ED25519:
            try:
                VerifyKey(self.public).verify(message, signature)
            except (CryptoError, ValueError):
                return False
            return True
        return _p256_verify(self.public, message, signature)


def _p256_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
        return False
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
        key.verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class LiveProof:
    """The phone's signature over one slot; `residue` is the slot mod 256 as sent."""

    residue: int
    signature: bytes


def site_code(site: str) -> bytes:
    return hashlib.sha256(site.encode("utf-8")).digest()[:SITE_CODE_LEN]


def gate_code(gate: str) -> bytes:
    return hashlib.sha256(gate.encode("utf-8")).digest()[:GATE_CODE_LEN]


def code_ref(code: bytes) -> str:
    """How a parsed version 2 pass names a site or gate: '#' and the code in hex. No site or
    gate id may start with '#', so a code never equals a real id."""
    return "#" + code.hex()


# A gate asks after its own site and gate on every version 2 pass: a few ids, hashed once.
@functools.lru_cache(maxsize=64)
def site_ref(site: str) -> str:
    """code_ref of the site's code: how a parsed version 2 pass names this site."""
    return code_ref(site_code(site))


@functools.lru_cache(maxsize=64)
def gate_ref(gate: str) -> str:
    return code_ref(gate_code(gate))


def slot_of(unix_s: float) -> int:
    return int(unix_s // SLOT_S)


def live_message(pass_id: bytes, slot: int) -> bytes:
    """What the phone signs for one slot."""
    return LIVE_CONTEXT + pass_id + struct.pack(">I", slot)


def nearest_slot(residue: int, unix_s: float) -> int:
    """The absolute slot with this residue nearest the gate's clock."""
    now = slot_of(unix_s)
    delta = (residue - now) % SLOT_RESIDUE
    if delta >= SLOT_RESIDUE // 2:
        delta -= SLOT_RESIDUE
    return now + delta


def slot_in_window(slot: int, unix_s: float, clock_skew_s: int) -> bool:
    """A slot is good from `skew` before it begins until `skew` after it ends, never longer
    than LIVE_MAX_AGE_S after it began: a forwarded screenshot dies within 30 s everywhere."""
    age = unix_s - slot * SLOT_S
    ahead = min(clock_skew_s, LIVE_MAX_AGE_S - SLOT_S)
    return -ahead <= age <= min(SLOT_S + clock_skew_s, LIVE_MAX_AGE_S)
