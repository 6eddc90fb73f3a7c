"""The pass parsers against their slower reference (the codec as of cab17e0, kept below):
the same SignedPass, or the same exception with the same message, on valid passes of both
versions, on passes built field by field with any values, and on mutated texts."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from protocol.base45 import _TRANSLATE, ALPHABET, Base45Error, b45decode, b45encode
from protocol.epass import (
    _HEAD,
    _MIN_LEN,
    ALL_DAYS,
    ANY_TIME,
    BOUND_PREFIX,
    HOLDER_KINDS,
    MAX_FIELD_BYTES,
    MAX_GATES,
    MAX_TEXT_LEN,
    PREFIX,
    SIGNATURE_LEN,
    VERSION,
    HolderKind,
    PassData,
    PassFormatError,
    SignedPass,
    check_pass,
    encode_pass,
    parse_pass,
    plainly_valid,
)
from protocol.epass_bound import PROOF_LEN, add_proof, encode_bound_pass
from protocol.livecode import GATE_CODE_LEN, DeviceAlg, DeviceKey, LiveProof, code_ref
from tests.unit.livecode_helpers import ISSUER, ed25519_phone, p256_phone
from tests.unit.test_epass import pass_data as signable

# ---- The reference: b45decode, parse_pass and parse_bound_pass as they were at cab17e0 ----

_MASK_LANES = 1432
_LANE_MASK = int.from_bytes(b"\xff\0\0" * _MASK_LANES, "little")


def ref_b45decode(text: str) -> bytes:
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise Base45Error("non-ASCII character") from exc
    vals = raw.translate(_TRANSLATE)
    if 0xFF in vals:
        raise Base45Error("character outside the base45 alphabet")
    full, rest = divmod(len(vals), 3)
    if rest == 1:
        raise Base45Error("length leaves a dangling character")
    out = bytearray(2 * full + rest // 2)
    mask = _LANE_MASK if full <= _MASK_LANES else int.from_bytes(b"\xff\0\0" * full, "little")
    x = int.from_bytes(vals[: full * 3], "little")
    n = (x & mask) + 45 * ((x >> 8) & mask) + 2025 * ((x >> 16) & mask)
    lanes = n.to_bytes(full * 3, "little")
    if lanes[2::3].count(0) != full:
        raise Base45Error("chunk value out of range")
    out[0 : 2 * full : 2], out[1 : 2 * full : 2] = lanes[1::3], lanes[0::3]
    if rest == 2:
        n = vals[-2] + vals[-1] * 45
        if n > 0xFF:
            raise Base45Error("final chunk value out of range")
        out[-1] = n
    return bytes(out)


def _ref_payload(text: str, prefix: str, min_len: int) -> bytes:
    if not isinstance(text, str) or not text.startswith(prefix):
        raise PassFormatError(f"not a menjin pass (missing {prefix} prefix)")
    if len(text) > MAX_TEXT_LEN:
        raise PassFormatError("pass text too long")
    try:
        raw = ref_b45decode(text[len(prefix) :])
    except Base45Error as exc:
        raise PassFormatError(f"bad base45: {exc}") from exc
    if len(raw) < min_len:
        raise PassFormatError("pass too short")
    return raw


def _ref_check(data: PassData) -> None:
    try:
        check_pass(data)
    except ValueError as exc:
        raise PassFormatError(str(exc)) from exc


def _ref_get_str(raw: bytes, pos: int, end: int) -> tuple[str, int]:
    if pos >= end:
        raise PassFormatError("truncated field")
    n = raw[pos]
    stop = pos + 1 + n
    if stop > end:
        raise PassFormatError("field runs past the signature")
    return raw[pos + 1 : stop].decode("utf-8"), stop


def ref_parse_pass(text: str) -> SignedPass:
    if isinstance(text, str) and text.startswith(BOUND_PREFIX):
        return ref_parse_bound_pass(text)
    raw = _ref_payload(text, PREFIX, _MIN_LEN)
    (version, key_id, pass_id, kind, vfrom, vuntil, h0, h1, days, max_uses) = _HEAD.unpack_from(raw)
    if version != VERSION:
        raise PassFormatError(f"unsupported pass version {version}")
    if kind >= len(HOLDER_KINDS):
        raise PassFormatError("unknown holder kind")
    end = len(raw) - SIGNATURE_LEN
    try:
        site, pos = _ref_get_str(raw, _HEAD.size, end)
        name, pos = _ref_get_str(raw, pos, end)
        if pos >= end:
            raise PassFormatError("truncated gate list")
        count = raw[pos]
        pos += 1
        gates = []
        for _ in range(count):
            gate, pos = _ref_get_str(raw, pos, end)
            gates.append(gate)
    except UnicodeDecodeError as exc:
        raise PassFormatError("text field is not UTF-8") from exc
    if pos != end:
        raise PassFormatError("bytes left over before the signature")
    data = PassData(
        pass_id=pass_id,
        site=site,
        kind=HOLDER_KINDS[kind],
        valid_from=vfrom,
        valid_until=vuntil,
        display_name=name,
        gates=tuple(gates),
        hours=None if h0 == ANY_TIME and h1 == ANY_TIME else (h0, h1),
        weekdays=days,
        max_uses=max_uses,
    )
    _ref_check(data)
    return SignedPass(key_id, data, raw[:end], raw[end:])


_V2_HEAD = struct.Struct(">4s8sBII4s")


def _need(raw: bytes, pos: int, n: int) -> int:
    if pos + n > len(raw):
        raise PassFormatError("truncated field")
    return pos + n


def _ref_optional(raw: bytes, pos: int, flags: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    if flags & 0x10:
        out["hours"] = struct.unpack(">HH", raw[pos : _need(raw, pos, 4)])
        pos += 4
    if flags & 0x20:
        pos = _need(raw, pos, 1)
        out["weekdays"] = raw[pos - 1]
        if out["weekdays"] == ALL_DAYS:
            raise PassFormatError("weekdays flag set over every day")
    if flags & 0x40:
        out["max_uses"] = struct.unpack(">H", raw[pos : _need(raw, pos, 2)])[0]
        pos += 2
        if not out["max_uses"]:
            raise PassFormatError("max uses flag set over 0")
    if flags & 0x80:
        pos = _need(raw, pos, 1)
        count = raw[pos - 1]
        if not 0 < count <= MAX_GATES:
            raise PassFormatError(f"gate count must be 1..{MAX_GATES}")
        end = _need(raw, pos, count * GATE_CODE_LEN)
        out["gates"] = tuple(
            code_ref(raw[i : i + GATE_CODE_LEN]) for i in range(pos, end, GATE_CODE_LEN)
        )
        pos = end
    return out, pos


def ref_parse_bound_pass(text: str) -> SignedPass:
    raw = _ref_payload(text, BOUND_PREFIX, _V2_HEAD.size)
    key_id, pass_id, flags, vfrom, vuntil, site = _V2_HEAD.unpack_from(raw)
    if flags & 0x07 >= len(HOLDER_KINDS):
        raise PassFormatError("unknown holder kind")
    p256 = bool(flags & 0x08)
    pos = _V2_HEAD.size
    end = _need(raw, pos, 33 if p256 else 32)
    device = DeviceKey(DeviceAlg.P256 if p256 else DeviceAlg.ED25519, raw[pos:end])
    if p256 and raw[pos] not in (2, 3):
        raise PassFormatError("device key is not a compressed P-256 point")
    optional, pos = _ref_optional(raw, end, flags) if flags & 0xF0 else ({}, end)
    pos = _need(raw, pos, 1)
    n = raw[pos - 1]
    if n > MAX_FIELD_BYTES:
        raise PassFormatError(f"display name is {n} bytes; at most {MAX_FIELD_BYTES}")
    stop = _need(raw, pos, n)
    try:
        name = raw[pos:stop].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PassFormatError("text field is not UTF-8") from exc
    pos = stop
    data = PassData(
        pass_id=pass_id,
        site=code_ref(site),
        kind=HOLDER_KINDS[flags & 0x07],
        valid_from=vfrom,
        valid_until=vuntil,
        display_name=name,
        **optional,
    )
    _ref_check(data)
    message = BOUND_PREFIX.encode() + raw[:pos]
    end = _need(raw, pos, SIGNATURE_LEN)
    rest = len(raw) - end
    proof = None
    if rest:
        if rest != PROOF_LEN:
            raise PassFormatError(f"{rest} bytes after the signature; a live proof is {PROOF_LEN}")
        proof = LiveProof(raw[end], raw[end + 1 :])
    return SignedPass(key_id, data, message, raw[pos:end], device=device, proof=proof)


# ---- The comparisons ----


def outcome(parse: Callable[[Any], object], text: Any) -> tuple[str, object]:
    """What a parser made of a text: its result, or its exception's type and message."""
    try:
        return "ok", parse(text)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def assert_same(text: Any) -> str:
    """Both parsers agree on text; what they made of it, for hypothesis's statistics."""
    got = outcome(parse_pass, text)
    assert got == outcome(ref_parse_pass, text), text
    return got[0] if got[0] == "ok" else str(got[1])[:32]


def _same_with_mutations(text: str, rng: random.Random, mutations: int = 5) -> None:
    """Both parsers agree on text and on a few damaged copies of it."""
    event(assert_same(text))
    for _ in range(mutations):
        event(assert_same(_mutate(text, rng)))


# Texts as a field holds them, odd ones included: control characters, C1, non-printable,
# too long for a field (48 bytes), empty.
_odd_text = st.text(
    alphabet=st.sampled_from("ab东华 *-_\x00\x1b\x7f\x85\u200b\u3000\x9f"), max_size=52
)
_field = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=14), _odd_text
)

any_data = st.builds(
    PassData,
    pass_id=st.binary(min_size=8, max_size=8),
    site=_field,
    kind=st.sampled_from(list(HolderKind)),
    valid_from=st.integers(0, 2**32 - 1),
    valid_until=st.integers(0, 2**32 - 1),
    display_name=_field,
    gates=st.lists(_field, max_size=4).map(tuple),
    hours=st.none() | st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    weekdays=st.integers(0, 0xFF),
    max_uses=st.integers(0, 0xFFFF),
)


def _v1_bytes(data: PassData, gate_count: int | None, signature: bytes) -> bytes:
    """A version 1 pass laid out field by field, whatever the values (nothing is checked)."""
    start, end = data.hours if data.hours is not None else (ANY_TIME, ANY_TIME)
    out = bytearray(
        _HEAD.pack(VERSION, b"kid4", data.pass_id, HOLDER_KINDS.index(data.kind),
                   data.valid_from, data.valid_until, start, end, data.weekdays, data.max_uses)
    )  # fmt: skip
    for value in (data.site, data.display_name):
        raw = value.encode("utf-8", "surrogatepass")[:255]
        out += bytes([len(raw)]) + raw
    out.append(len(data.gates) if gate_count is None else gate_count)
    for gate in data.gates:
        raw = gate.encode("utf-8", "surrogatepass")[:255]
        out += bytes([len(raw)]) + raw
    return bytes(out) + signature


def _v2_bytes(data: PassData, flags: int, device: bytes, tail: bytes) -> bytes:
    """A version 2 pass laid out field by field under any flags (nothing is checked)."""
    start, end = data.hours if data.hours is not None else (ANY_TIME, ANY_TIME)
    name = data.display_name.encode("utf-8", "surrogatepass")[:255]
    out = bytearray(
        _V2_HEAD.pack(b"kid4", data.pass_id, flags, data.valid_from, data.valid_until, b"site")
    )
    out += device
    out += struct.pack(">HH", start, end) if flags & 0x10 else b""
    out += bytes([data.weekdays]) if flags & 0x20 else b""
    out += struct.pack(">H", data.max_uses) if flags & 0x40 else b""
    if flags & 0x80:
        out += bytes([len(data.gates)]) + b"gc3" * len(data.gates)
    out += bytes([len(name)]) + name
    return bytes(out) + tail


def _mutate(text: str, rng: random.Random) -> str:
    """The same text damaged in one of a few ways, in its bytes or in its characters."""
    prefix, body = text[:4], text[4:]
    op = rng.randrange(8)
    if op < 4:
        raw = bytearray(ref_b45decode(body))
        i = rng.randrange(len(raw) + 1)
        if op == 0 and raw:
            raw[i % len(raw)] ^= 1 << rng.randrange(8)
        elif op == 1 and raw:
            raw[i % len(raw)] = rng.choice((0, 0x7F, 0xFF, rng.randrange(256)))
        elif op == 2:
            raw[i:i] = rng.randbytes(rng.randrange(1, 4))
        else:
            del raw[i : i + rng.randrange(1, 70)]
        return prefix + b45encode(bytes(raw))
    i = rng.randrange(len(text))
    if op == 4:
        return text[:i] + rng.choice(ALPHABET + "a\x00€") + text[i + 1 :]
    if op == 5:
        return text[:i] + text[i + 1 :]
    if op == 6:
        return rng.choice(("MJ1:", "MJ2:", "mj2:", "MJ3:", "")) + body
    return text + rng.choice(("", "0", "00", "000", "GGW", ":::"))


@given(st.text(alphabet=ALPHABET + "a€\x00", max_size=400))
@example("GGW")
@example("FGW")
def test_b45decode_matches_reference(text: str) -> None:
    assert outcome(b45decode, text) == outcome(ref_b45decode, text)


@pytest.mark.parametrize("length", [4293, 4294, 4296, 4298, 4300, 5000])
def test_b45decode_matches_reference_past_the_largest_qr_code(length: int) -> None:
    rng = random.Random(length)
    raw = rng.randbytes(length // 3 * 2 + (1 if length % 3 == 2 else 0))
    text = b45encode(raw)
    assert b45decode(text) == ref_b45decode(text) == raw
    bad = text[:-3] + "::" + text[-1]  # a last full chunk of 2**16 or more
    assert outcome(b45decode, bad) == outcome(ref_b45decode, bad)


@settings(max_examples=300)
@given(signable | any_data, st.randoms(use_true_random=False))
def test_v1_passes_match_reference(data: PassData, rng: random.Random) -> None:
    try:
        text = encode_pass(data, ISSUER)
    except ValueError:  # not signable: laid out by hand below
        text = PREFIX + b45encode(_v1_bytes(data, None, bytes(SIGNATURE_LEN)))
    _same_with_mutations(text, rng)


@settings(max_examples=300)
@given(
    signable | any_data,
    st.none() | st.integers(0, 40),
    st.binary(min_size=64, max_size=64) | st.binary(min_size=60, max_size=66),
)
def test_v1_passes_laid_out_by_hand_match_reference(
    data: PassData, gate_count: int | None, signature: bytes
) -> None:
    event(assert_same(PREFIX + b45encode(_v1_bytes(data, gate_count, signature))))


_PHONES = [ed25519_phone(), p256_phone()]


@settings(max_examples=300)
@given(
    signable | any_data,
    st.sampled_from(_PHONES),
    st.none() | st.integers(0, 2**32 - 1),
    st.randoms(use_true_random=False),
)
def test_v2_passes_and_live_codes_match_reference(
    data: PassData, phone: Any, slot: int | None, rng: random.Random
) -> None:
    data = replace(data, gates=data.gates[:2])
    try:
        text = encode_bound_pass(data, phone.device, ISSUER)
    except ValueError:
        flags = 0x70 | (0x80 if data.gates else 0) | (0x08 if phone is _PHONES[1] else 0)
        text = BOUND_PREFIX + b45encode(_v2_bytes(data, flags, phone.device.public, b""))
    if slot is not None:
        text = add_proof(text, slot, rng.randbytes(64))
    _same_with_mutations(text, rng)


@settings(max_examples=300)
@given(
    signable | any_data,
    st.integers(0, 0xFF),
    st.sampled_from([b"\x02" + bytes(32), b"\x03" + bytes(32), b"\x04" + bytes(32), bytes(32)]),
    st.binary(min_size=64, max_size=64)
    | st.binary(min_size=129, max_size=129)
    | st.binary(max_size=140),
)
def test_v2_passes_laid_out_by_hand_match_reference(
    data: PassData, flags: int, device: bytes, tail: bytes
) -> None:
    data = replace(data, gates=data.gates[: flags & 0x3F])  # counts 0..63, beyond 32 too
    event(assert_same(BOUND_PREFIX + b45encode(_v2_bytes(data, flags, device, tail))))


@pytest.mark.parametrize("text", [None, b"MJ1:", 42, "", "MJ1", "MJ2", "MJ1:" + "0" * 400])
def test_what_is_not_pass_text_matches_reference(text: Any) -> None:
    assert_same(text)


@settings(max_examples=1000)
@given(signable | any_data)
def test_plainly_valid_only_says_so_of_what_check_pass_accepts(data: PassData) -> None:
    sizes = [len(t.encode("utf-8", "surrogatepass")) for t in (data.site, data.display_name)]
    longest = max(sizes + [len(g.encode("utf-8", "surrogatepass")) for g in data.gates])
    if plainly_valid(data, longest):
        check_pass(data)  # raises if plainly_valid was wrong
