"""Pass version 2: bound to the holder's phone key, shown as a live code that changes every slot.

Byte layout (all integers big-endian; docs/protocol.md has it with test vectors). The text is
"MJ2:" + base45 of these bytes; the version lives in the prefix, which the issuer signs.

    0   4B    key id of the issuer's Ed25519 key (as in version 1)
    4   8B    pass id
    12  u8    flags: bits 0-2 holder kind; bit 3 device key (0 Ed25519, 1 P-256); bits 4-7
              say that hours, weekdays, max uses, gates follow (each only when not the default)
    13  u32   valid from, Unix seconds UTC
    17  u32   valid until, Unix seconds UTC (exclusive)
    21  4B    site code: SHA-256(site, UTF-8)[:4]
    25  32B   Ed25519 public key of the phone, or 33B compressed P-256 point
    ..  [u16 u16 hours] [u8 weekdays] [u16 max uses] [u8 n 1..32, n x 3B gate codes]
    ..  u8+n  masked display name, UTF-8, 0..48 bytes
    ..  64B   Ed25519 signature of the issuer over "MJ2:" and every byte before it
  live code only, appended by the phone:
    ..  u8    slot mod 256 (a slot is 10 s of Unix time; the gate takes the nearest such slot)
    ..  64B   device signature over "MJ2L" + pass id + u32 slot (Ed25519, or P-256 r||s)

A gate code is SHA-256(gate id)[:3]. Codes instead of names keep a live code for a visitor
(hours, weekdays, a use limit, one gate) inside a version 10-M QR code.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from nacl.signing import SigningKey

from protocol.base45 import b45decode, b45encode
from protocol.epass import (
    ALL_DAYS,
    HOLDER_KINDS,
    MAX_FIELD_BYTES,
    MAX_GATES,
    MAX_TEXT_LEN,
    SIGNATURE_LEN,
    PassData,
    PassFormatError,
    PassTooLargeError,
    SignedPass,
    check_parsed,
    check_pass,
    key_id_of,
    plainly_valid,
    text_payload,
)
from protocol.livecode import (
    GATE_CODE_LEN,
    PREFIX,
    SLOT_RESIDUE,
    DeviceAlg,
    DeviceKey,
    LiveProof,
    code_ref,
    gate_code,
    site_code,
)

SIGNED_PREFIX = PREFIX.encode("ascii")
PROOF_LEN = 1 + SIGNATURE_LEN
# 311 QR characters: "MJ2:" + 306 base45 characters = 204 bytes for the pass and its proof.
MAX_LIVE_BYTES = (MAX_TEXT_LEN - len(PREFIX)) // 3 * 2
MAX_PASS_BYTES = MAX_LIVE_BYTES - PROOF_LEN

_HEAD = struct.Struct(">4s8sBII4s")
_HOURS = struct.Struct(">HH")


class _Flag(IntEnum):
    P256 = 1 << 3
    HOURS = 1 << 4
    WEEKDAYS = 1 << 5
    MAX_USES = 1 << 6
    GATES = 1 << 7


def encode_bound_pass(data: PassData, device: DeviceKey, signing_key: SigningKey) -> str:
    """Sign a device-bound pass; PassTooLargeError when its live code would exceed QR v10-M."""
    check_pass(data)
    device.check()
    out = bytearray(_head(data, key_id_of(signing_key.verify_key), device))
    out += device.public
    out += _optional_fields(data)
    name = data.display_name.encode("utf-8")
    out.append(len(name))
    out += name
    out += signing_key.sign(SIGNED_PREFIX + bytes(out)).signature
    if len(out) > MAX_PASS_BYTES:
        raise PassTooLargeError(
            f"device-bound pass is {len(out)} bytes; its live code needs {PROOF_LEN} more and a"
            f" version 10 QR at level M holds {MAX_LIVE_BYTES}"
        )
    return PREFIX + b45encode(bytes(out))


def _head(data: PassData, key_id: bytes, device: DeviceKey) -> bytes:
    flags = HOLDER_KINDS.index(data.kind)
    for present, bit in (
        (device.alg is DeviceAlg.P256, _Flag.P256),
        (data.hours is not None, _Flag.HOURS),
        (data.weekdays != ALL_DAYS, _Flag.WEEKDAYS),
        (data.max_uses != 0, _Flag.MAX_USES),
        (bool(data.gates), _Flag.GATES),
    ):
        flags |= bit if present else 0
    return _HEAD.pack(
        key_id, data.pass_id, flags, data.valid_from, data.valid_until, site_code(data.site)
    )


def _optional_fields(data: PassData) -> bytes:
    out = bytearray()
    if data.hours is not None:
        out += struct.pack(">HH", *data.hours)
    if data.weekdays != ALL_DAYS:
        out.append(data.weekdays)
    if data.max_uses:
        out += struct.pack(">H", data.max_uses)
    if data.gates:
        out.append(len(data.gates))
        for gate in data.gates:
            out += gate_code(gate)
    return bytes(out)


def add_proof(pass_text: str, slot: int, signature: bytes) -> str:
    """The live code for one slot: the pass with the phone's proof appended."""
    raw = b45decode(pass_text[len(PREFIX) :])
    return PREFIX + b45encode(raw + bytes([slot % SLOT_RESIDUE]) + signature)


def parse_bound_pass(text: str) -> SignedPass:
    """Parse a version 2 pass or live code without checking signatures; PassFormatError on
    anything odd. The site and gates come back as code_ref strings."""
    # Fields are read by position, not through a reader object, and the defaults of the
    # optional ones are not looked up: this runs for every code shown at a gate.
    raw = text_payload(text, PREFIX, _HEAD.size)
    key_id, pass_id, flags, vfrom, vuntil, site = _HEAD.unpack_from(raw)
    if flags & 0x07 >= len(HOLDER_KINDS):
        raise PassFormatError("unknown holder kind")
    pos = _HEAD.size
    if flags & _Flag.P256:
        end = _need(raw, pos, 33)
        if raw[pos] not in (2, 3):
            raise PassFormatError("device key is not a compressed P-256 point")
        device = DeviceKey(DeviceAlg.P256, raw[pos:end])
    else:
        end = _need(raw, pos, 32)
        device = DeviceKey(DeviceAlg.ED25519, raw[pos:end])
    if flags & 0xF0:
        hours, weekdays, max_uses, gates, end = _read_optional(raw, end, flags)
    else:
        hours, weekdays, max_uses, gates = None, ALL_DAYS, 0, ()
    name, pos = _read_text(raw, end)
    data = PassData(pass_id, code_ref(site), HOLDER_KINDS[flags & 0x07], vfrom, vuntil, name,
                    gates, hours, weekdays, max_uses)  # fmt: skip
    # Site and gate codes are 9 and 7 characters of hex: the name is the longest text field.
    if not plainly_valid(data, pos - end - 1):
        check_parsed(data)  # also refuses 0xFFFF (any time) under a set hours flag
    end = _need(raw, pos, SIGNATURE_LEN)
    return SignedPass(key_id, data, SIGNED_PREFIX + raw[:pos], raw[pos:end], device,
                      _read_proof(raw, end))  # fmt: skip


def _need(raw: bytes, pos: int, n: int) -> int:
    """Where a field of n bytes at pos ends; refused when it would run past the end."""
    if pos + n > len(raw):
        raise PassFormatError("truncated field")
    return pos + n


def _read_optional(
    raw: bytes, pos: int, flags: int
) -> tuple[tuple[int, int] | None, int, int, tuple[str, ...], int]:
    """Hours, weekdays, max uses and gates (the default of each one absent), and where they end."""
    # Each optional field is present exactly when it differs from its default, so every pass
    # has one encoding: a flag set over a default value is refused, not read.
    hours: tuple[int, int] | None = None
    weekdays, max_uses = ALL_DAYS, 0
    gates: tuple[str, ...] = ()
    if flags & _Flag.HOURS:
        end = _need(raw, pos, 4)
        hours = _HOURS.unpack_from(raw, pos)
        pos = end
    if flags & _Flag.WEEKDAYS:
        pos = _need(raw, pos, 1)
        weekdays = raw[pos - 1]
        if weekdays == ALL_DAYS:
            raise PassFormatError("weekdays flag set over every day")
    if flags & _Flag.MAX_USES:
        pos = _need(raw, pos, 2)
        max_uses = raw[pos - 2] << 8 | raw[pos - 1]
        if not max_uses:
            raise PassFormatError("max uses flag set over 0")
    if flags & _Flag.GATES:
        pos = _need(raw, pos, 1)
        count = raw[pos - 1]
        if not 0 < count <= MAX_GATES:
            raise PassFormatError(f"gate count must be 1..{MAX_GATES}")
        end = _need(raw, pos, count * GATE_CODE_LEN)
        gates = tuple(code_ref(raw[i : i + GATE_CODE_LEN]) for i in range(pos, end, GATE_CODE_LEN))
        pos = end
    return hours, weekdays, max_uses, gates, pos


def _read_text(raw: bytes, pos: int) -> tuple[str, int]:
    pos = _need(raw, pos, 1)
    n = raw[pos - 1]
    if n > MAX_FIELD_BYTES:
        raise PassFormatError(f"display name is {n} bytes; at most {MAX_FIELD_BYTES}")
    end = _need(raw, pos, n)
    try:
        return raw[pos:end].decode("utf-8"), end
    except UnicodeDecodeError as exc:
        raise PassFormatError("text field is not UTF-8") from exc


def _read_proof(raw: bytes, pos: int) -> LiveProof | None:
    rest = len(raw) - pos
    if rest == 0:
        return None
    if rest != PROOF_LEN:
        raise PassFormatError(f"{rest} bytes after the signature; a live proof is {PROOF_LEN}")
    return LiveProof(raw[pos], raw[pos + 1 :])
