"""Phone keys and live codes for tests, and the generator of docs/conformance/passes-v2.json.

Regenerate (P-256 signatures are randomised, so the texts change; the tests do not care):
    .venv/bin/python -m tests.unit.livecode_helpers > docs/conformance/passes-v2.json
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from nacl.signing import SigningKey

from protocol.base45 import b45decode, b45encode
from protocol.epass import HolderKind, PassData, encode_pass, key_id_of
from protocol.epass_bound import add_proof, encode_bound_pass
from protocol.livecode import PREFIX, SLOT_S, DeviceAlg, DeviceKey, live_message, slot_of

ISSUER = SigningKey(bytes(range(32)))
UNTRUSTED = SigningKey(bytes(range(1, 33)))
ED_SEED = bytes(range(64, 96))
P256_SCALAR = int.from_bytes(bytes(range(96, 128)), "big")


@dataclass(frozen=True)
class Phone:
    """A phone's key pair, as the page holds it in WebCrypto."""

    device: DeviceKey
    sign: Callable[[bytes], bytes]

    def live(self, pass_text: str, pass_id: bytes, slot: int) -> str:
        return add_proof(pass_text, slot, self.sign(live_message(pass_id, slot)))


def ed25519_phone(seed: bytes = ED_SEED) -> Phone:
    key = SigningKey(seed)
    return Phone(DeviceKey(DeviceAlg.ED25519, bytes(key.verify_key)), lambda m: key.sign(m)[:64])


def p256_phone(scalar: int = P256_SCALAR) -> Phone:
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )

    def sign(message: bytes) -> bytes:
        r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return Phone(DeviceKey(DeviceAlg.P256, public), sign)


def forged_live_code(text: str) -> str:
    """The same live code of RESIDENT with one bit of its issuer-signed display name flipped
    (still UTF-8): its issuer signature no longer verifies."""
    raw = bytearray(b45decode(text[len(PREFIX) :]))
    raw[60] ^= 1  # head 25, phone key 32, name length at 57, then the name
    return PREFIX + b45encode(bytes(raw))


NOW = datetime.fromisoformat("2026-12-02T10:00:03+08:00")  # a Wednesday in Beijing
SLOT = slot_of(NOW.timestamp())

RESIDENT = PassData(
    pass_id=bytes.fromhex("0123456789abcdef"),
    site="hutong-12",
    kind=HolderKind.RESIDENT,
    valid_from=1767196800,
    valid_until=1798732800,
    display_name="张*华",
)
VISITOR = PassData(
    pass_id=bytes.fromhex("fedcba9876543210"),
    site="hutong-12",
    kind=HolderKind.VISITOR,
    valid_from=1796054400,
    valid_until=1796659200,
    display_name="李*",
    gates=("east",),
    hours=(480, 1200),
    weekdays=0x1F,
    max_uses=3,
)


def _fields(data: PassData) -> dict[str, Any]:
    return {
        "pass_id": data.pass_id.hex(),
        "site": data.site,
        "kind": data.kind.value,
        "valid_from": data.valid_from,
        "valid_until": data.valid_until,
        "display_name": data.display_name,
        "gates": list(data.gates),
        "hours": list(data.hours) if data.hours else None,
        "weekdays": data.weekdays,
        "max_uses": data.max_uses,
    }


def _case(name: str, text: str, reason: str, **extra: Any) -> dict[str, Any]:
    case: dict[str, Any] = {"name": name, "text": text, "now": extra.pop("now", NOW.isoformat())}
    case.update(extra)
    case["expect"] = {"granted": reason == "ok", "reason": reason}
    return case


def _raw_text(raw: bytes) -> str:
    return PREFIX + b45encode(raw)


def build_vectors() -> dict[str, Any]:
    ed, p256 = ed25519_phone(), p256_phone()
    resident = encode_bound_pass(RESIDENT, ed.device, ISSUER)
    visitor = encode_bound_pass(VISITOR, p256.device, ISSUER)
    res_live = ed.live(resident, RESIDENT.pass_id, SLOT)
    vis_live = p256.live(visitor, VISITOR.pass_id, SLOT)
    v1_visitor = encode_pass(VISITOR, ISSUER)
    raw = b45decode(resident[4:])
    later = datetime.fromtimestamp(SLOT * SLOT_S + 31, NOW.tzinfo).isoformat()
    early = datetime.fromtimestamp(SLOT * SLOT_S - 21, NOW.tzinfo).isoformat()
    cases = [
        _case("live-ed25519-ok", res_live, "ok"),
        _case("live-p256-visitor-ok", vis_live, "ok"),
        _case("live-static-text", resident, "no_live_code"),
        _case(
            "live-proof-by-another-phone",
            ed25519_phone(bytes(32)).live(resident, RESIDENT.pass_id, SLOT),
            "no_live_code",
        ),
        _case(
            "live-proof-for-another-pass",
            add_proof(resident, SLOT, ed.sign(live_message(VISITOR.pass_id, SLOT))),
            "no_live_code",
        ),
        _case("live-31s-after-slot-began", res_live, "stale_code", now=later),
        _case("live-21s-before-slot-begins", res_live, "stale_code", now=early),
        _case(
            "live-replayed",
            res_live,
            "replayed",
            cache={"live_codes": [{"pass_id": RESIDENT.pass_id.hex(), "slot": SLOT}]},
        ),
        _case("live-visitor-wrong-gate", vis_live, "wrong_gate", gate={"gate": "west"}),
        _case("live-wrong-site", res_live, "wrong_site", gate={"site": "hutong-99"}),
        _case(
            "live-untrusted-issuer",
            ed.live(encode_bound_pass(RESIDENT, ed.device, UNTRUSTED), RESIDENT.pass_id, SLOT),
            "unknown_key",
        ),
        _case("live-revoked", res_live, "revoked", cache={"revoked": [RESIDENT.pass_id.hex()]}),
        _case(
            "printed-visitor-at-live-only-gate",
            v1_visitor,
            "no_live_code",
            gate={"live_code_kinds": ["visitor"]},
        ),
        _case("printed-visitor-elsewhere", v1_visitor, "ok"),
        _case(
            "live-visitor-at-live-only-gate", vis_live, "ok", gate={"live_code_kinds": ["visitor"]}
        ),
        _case(
            "v2-flag-default",
            _raw_text(raw[:12] + bytes([raw[12] | 0x20]) + raw[13:57] + b"\x7f" + raw[57:]),
            "malformed",
            rule="flag-default",
        ),
        _case("v2-proof-length", _raw_text(raw + b"\x00" * 10), "malformed", rule="proof-length"),
        _case("v2-truncated", _raw_text(raw[:100]), "malformed", rule="truncated"),
        _case(
            "v2-device-point",
            _raw_text(raw[:12] + bytes([raw[12] | 0x08]) + raw[13:25] + b"\x04" + raw[25:]),
            "malformed",
            rule="device-point",
        ),
    ]
    return {
        "about": "menjin e-pass version 2 (device-bound) and live codes; see docs/protocol.md",
        "version": 2,
        "keys": {
            "issuer": {
                "seed_hex": bytes(ISSUER).hex(),
                "key_id": key_id_of(ISSUER.verify_key).hex(),
            },
            "untrusted": {"seed_hex": bytes(UNTRUSTED).hex()},
            "phone_ed25519": {"seed_hex": ED_SEED.hex(), "public_key_hex": ed.device.public.hex()},
            "phone_p256": {
                "private_scalar_hex": f"{P256_SCALAR:064x}",
                "public_key_hex": p256.device.public.hex(),
            },
        },
        "gate": {
            "site": "hutong-12",
            "gate": "east",
            "direction": "in",
            "timezone": "Asia/Shanghai",
            "temperature": "off",
            "clock_skew_s": 300,
            "live_code_kinds": [],
            "trusted": ["issuer"],
        },
        "passes": [
            {
                "name": "resident-ed25519",
                "fields": _fields(RESIDENT),
                "phone": "phone_ed25519",
                "text": resident,
                "live": {"slot": SLOT, "text": res_live},
            },
            {
                "name": "visitor-p256",
                "fields": _fields(VISITOR),
                "phone": "phone_p256",
                "text": visitor,
                "live": {"slot": SLOT, "text": vis_live},
            },
        ],
        "cases": cases,
    }


if __name__ == "__main__":
    print(json.dumps(build_vectors(), ensure_ascii=False, indent=2))
