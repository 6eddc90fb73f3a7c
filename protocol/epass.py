"""The e-pass (电子出入证): compact binary payload, Ed25519 signature, base45 text for QR codes.

Byte layout (version 1, all integers big-endian; docs/protocol.md has it with test vectors):

    0   u8    version (1)
    1   4B    key id: first 4 bytes of SHA-256 of the signer's 32-byte Ed25519 public key
    5   8B    pass id
    13  u8    holder kind (index into HOLDER_KINDS)
    14  u32   valid from, Unix seconds UTC
    18  u32   valid until, Unix seconds UTC (exclusive)
    22  u16   daily hours start, minute of day 0..1439 in the gate's time zone
    24  u16   daily hours end, minute of day 0..1440, exclusive, != start; end < start crosses
              midnight; 0xFFFF in both hours fields (and only then): any time
    26  u8    weekdays bitmask, bit 0 = Monday .. bit 6 = Sunday; bit 7 clear, not 0
    27  u16   max uses (0: unlimited)
    29  u8+n  site, UTF-8, length-prefixed, 1..48 bytes
    ..  u8+n  masked display name, UTF-8, length-prefixed, 0..48 bytes
    ..  u8    gate count 0..32 (0: all gates), then each gate UTF-8, length-prefixed, 1..48 bytes
    ..  64B   Ed25519 signature over every byte before it

Text fields hold no control characters. Text form: "MJ1:" followed by the base45 encoding of
all of the above, at most 311 characters. parse_pass refuses exactly what check_pass refuses to
sign, so issuer and gate agree on every pass.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from protocol.base45 import Base45Error, b45decode, b45encode
from protocol.livecode import DeviceKey, LiveProof, gate_ref, site_ref

PREFIX = "MJ1:"
BOUND_PREFIX = "MJ2:"  # version 2, device-bound: protocol/epass_bound.py
VERSION = 1
SIGNATURE_LEN = 64
ANY_TIME = 0xFFFF
ALL_DAYS = 0x7F
MAX_TEXT_LEN = 311  # QR version 10 at error correction M holds 311 alphanumeric characters
MAX_FIELD_BYTES = 48
MAX_GATES = 32
DAY_MINUTES = 1440
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_HEAD = struct.Struct(">B4s8sBIIHHBH")
# Unicode's category Cc, which is closed: C0, DEL and C1. One regex search, not a category
# lookup per character, as every pass is checked on each presentation.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_MIN_LEN = _HEAD.size + 3 + SIGNATURE_LEN


class HolderKind(StrEnum):
    """Who holds the pass; the order is the wire code and must never change."""

    RESIDENT = "resident"
    TENANT = "tenant"
    VISITOR = "visitor"
    STAFF = "staff"
    DELIVERY = "delivery"
    CONTRACTOR = "contractor"


HOLDER_KINDS = tuple(HolderKind)


class PassFormatError(ValueError):
    """The text is not a well-formed menjin pass."""


class PassTooLargeError(ValueError):
    """The pass would not fit a version 10 QR code at error correction M."""


@dataclass(frozen=True, slots=True)
class PassData:
    """What the compound's office signs; times are Unix seconds, hours are minutes of day."""

    pass_id: bytes
    site: str
    kind: HolderKind
    valid_from: int
    valid_until: int
    display_name: str = ""
    gates: tuple[str, ...] = ()
    hours: tuple[int, int] | None = None
    weekdays: int = ALL_DAYS
    max_uses: int = 0

    @property
    def pass_id_hex(self) -> str:
        return self.pass_id.hex()


@dataclass(frozen=True, slots=True)
class SignedPass:
    """A parsed pass whose signature has not been checked yet.

    A version 2 pass (`device` set) names its site and gates by code (see epass_bound), so ask
    for_site / for_gate rather than comparing data.site or data.gates.
    """

    key_id: bytes
    data: PassData
    message: bytes
    signature: bytes
    device: DeviceKey | None = None
    proof: LiveProof | None = None

    def for_site(self, site: str) -> bool:
        return self.data.site == (site if self.device is None else site_ref(site))

    def for_gate(self, gate: str) -> bool:
        if not self.data.gates:
            return True
        return (gate if self.device is None else gate_ref(gate)) in self.data.gates


def key_id_of(verify_key: VerifyKey) -> bytes:
    """The 4-byte key id that names a public key inside passes."""
    return hashlib.sha256(bytes(verify_key)).digest()[:4]


def _put_str(out: bytearray, value: str) -> None:
    raw = value.encode("utf-8")
    out.append(len(raw))
    out += raw


def check_pass(data: PassData) -> None:
    """Refuse what no issuer may sign; parse_pass refuses exactly the same, so both sides agree."""
    if len(data.pass_id) != 8:
        raise ValueError("pass id must be 8 bytes")
    if not 0 <= data.valid_from < data.valid_until < 2**32:
        raise ValueError("valid_from must be before valid_until, both within 1970..2106")
    if data.hours is not None:
        _check_hours(*data.hours)
    if not 0 < data.weekdays <= ALL_DAYS:
        raise ValueError("weekdays must name at least one day and only bits 0..6")
    if not 0 <= data.max_uses <= 0xFFFF:
        raise ValueError("max uses must be 0..65535")
    _check_text_fields(data)


def _check_hours(start: int, end: int) -> None:
    # Refused rather than guessed at: "any time" in one field only, and start == end, which
    # could mean a whole day or no time at all.
    if ANY_TIME in (start, end):
        raise ValueError("hours: 0xFFFF (any time) must be in both fields")
    if start == end:
        raise ValueError("hours: start equals end")
    if not (0 <= start < DAY_MINUTES and 0 <= end <= DAY_MINUTES):
        raise ValueError("hours: start must be 0..1439 and end 0..1440")


def _check_text_fields(data: PassData) -> None:
    if not data.site:
        raise ValueError("site must not be empty")
    if len(data.gates) > MAX_GATES:
        raise ValueError(f"more than {MAX_GATES} gates")
    if any(not g for g in data.gates):
        raise ValueError("a gate id is empty")
    named = [("site", data.site), ("display name", data.display_name)]
    for what, value in named + [("gate", g) for g in data.gates]:
        size = len(value.encode("utf-8"))
        if size > MAX_FIELD_BYTES:
            raise PassTooLargeError(f"{what} is {size} bytes; at most {MAX_FIELD_BYTES}")
        # A NUL or a terminal escape in a field would end a C string early or reach a screen.
        if _CONTROL.search(value):
            raise ValueError(f"{what} holds a control character")


def encode_pass(data: PassData, signing_key: SigningKey) -> str:
    """Sign a pass and return its QR text; raises PassTooLargeError when it exceeds QR v10-M."""
    check_pass(data)
    start, end = data.hours if data.hours is not None else (ANY_TIME, ANY_TIME)
    out = bytearray(
        _HEAD.pack(
            VERSION,
            key_id_of(signing_key.verify_key),
            data.pass_id,
            HOLDER_KINDS.index(data.kind),
            data.valid_from,
            data.valid_until,
            start,
            end,
            data.weekdays,
            data.max_uses,
        )
    )
    _put_str(out, data.site)
    _put_str(out, data.display_name)
    out.append(len(data.gates))
    for gate in data.gates:
        _put_str(out, gate)
    out += signing_key.sign(bytes(out)).signature
    text = PREFIX + b45encode(bytes(out))
    if len(text) > MAX_TEXT_LEN:
        raise PassTooLargeError(
            f"pass text is {len(text)} characters; a version 10 QR at level M holds {MAX_TEXT_LEN}"
        )
    return text


def parse_pass(text: str) -> SignedPass:
    """Parse pass text (either version) without checking signatures; PassFormatError on
    anything odd."""
    if isinstance(text, str) and text.startswith(BOUND_PREFIX):
        return _bound.parse_bound_pass(text)
    raw = text_payload(text, PREFIX, _MIN_LEN)
    (version, key_id, pass_id, kind, vfrom, vuntil, h0, h1, days, max_uses) = _HEAD.unpack_from(raw)
    if version != VERSION:
        raise PassFormatError(f"unsupported pass version {version}")
    if kind >= len(HOLDER_KINDS):
        raise PassFormatError("unknown holder kind")
    body_end = len(raw) - SIGNATURE_LEN
    site, name, gates, longest = _text_fields(raw, body_end)
    hours = None if h0 == ANY_TIME and h1 == ANY_TIME else (h0, h1)
    data = PassData(pass_id, site, HOLDER_KINDS[kind], vfrom, vuntil, name, gates, hours, days,
                    max_uses)  # fmt: skip
    if not plainly_valid(data, longest):
        check_parsed(data)
    return SignedPass(key_id, data, raw[:body_end], raw[body_end:])


def plainly_valid(data: PassData, longest: int) -> bool:
    """True only for a pass check_pass accepts, given the UTF-8 size of its longest text field.

    A few comparisons, where check_pass would encode and search every field again: a parser
    calls check_parsed, for check_pass's exact refusal, only when this says False. (A field
    with any character that is not printable, a control character or not, goes there too.)
    """
    hours = data.hours
    gates = data.gates
    return bool(
        len(data.pass_id) == 8
        and 0 <= data.valid_from < data.valid_until < 2**32
        and (hours is None or (hours[0] != hours[1] and 0 <= hours[0] < DAY_MINUTES
                               and 0 <= hours[1] <= DAY_MINUTES))
        and 0 < data.weekdays <= ALL_DAYS
        and 0 <= data.max_uses <= 0xFFFF
        and data.site
        and len(gates) <= MAX_GATES
        and all(gates)
        and longest <= MAX_FIELD_BYTES
        and (data.site + data.display_name + "".join(gates)).isprintable()
    )  # fmt: skip


def check_parsed(data: PassData) -> None:
    """check_pass on a parsed pass: its refusal as a PassFormatError."""
    try:
        check_pass(data)
    except ValueError as exc:
        raise PassFormatError(str(exc)) from exc


def text_payload(text: str, prefix: str, min_len: int) -> bytes:
    """The binary pass inside a text of this version's prefix (MJ1:, MJ2:); the text must be
    exact (no trimming, no case folding)."""
    if not isinstance(text, str) or not text.startswith(prefix):
        raise PassFormatError(f"not a menjin pass (missing {prefix} prefix)")
    if len(text) > MAX_TEXT_LEN:
        raise PassFormatError("pass text too long")
    try:
        raw = b45decode(text[len(prefix) :])
    except Base45Error as exc:
        raise PassFormatError(f"bad base45: {exc}") from exc
    if len(raw) < min_len:
        raise PassFormatError("pass too short")
    return raw


def _text_fields(raw: bytes, end: int) -> tuple[str, str, tuple[str, ...], int]:
    """Site, display name and gate ids, which must end exactly where the signature starts, and
    the size in bytes of the longest."""
    try:
        site, pos = _get_str(raw, _HEAD.size, end)
        name, stop = _get_str(raw, pos, end)
        longest = max(pos - _HEAD.size, stop - pos) - 1
        if stop >= end:
            raise PassFormatError("truncated gate list")
        gates = []
        pos = stop + 1
        for _ in range(raw[stop]):
            gate, stop = _get_str(raw, pos, end)
            longest = max(longest, stop - pos - 1)
            gates.append(gate)
            pos = stop
    except UnicodeDecodeError as exc:
        raise PassFormatError("text field is not UTF-8") from exc
    if pos != end:
        raise PassFormatError("bytes left over before the signature")
    return site, name, tuple(gates), longest


def _get_str(raw: bytes, pos: int, end: int) -> tuple[str, int]:
    if pos >= end:
        raise PassFormatError("truncated field")
    n = raw[pos]
    stop = pos + 1 + n
    if stop > end:
        raise PassFormatError("field runs past the signature")
    return raw[pos + 1 : stop].decode("utf-8"), stop


def signature_valid(signed: SignedPass, verify_key: VerifyKey) -> bool:
    """True when the pass was signed by verify_key."""
    try:
        verify_key.verify(signed.message, signed.signature)
    except BadSignatureError:
        return False
    return True


# No name holds five digits; a phone (11) or resident ID number (17 digits and a check digit
# or X) always does, however it is split, so the digits are counted, not matched as one run.
MAX_NAME_DIGITS = 4


def mask_name(name: str) -> str:
    """Mask a holder's name for the pass (张三华 -> 张*华); refuses phone or ID numbers."""
    name = " ".join(name.split())
    if name_digits(name) > MAX_NAME_DIGITS:
        raise ValueError("holder name looks like a phone or ID number; passes carry names only")
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * min(len(name) - 2, 3) + name[-1]


def name_digits(name: str) -> int:
    """How many decimal digits a name holds once NFKC folds full-width and circled ones to ASCII."""
    return sum(ch.isdecimal() for ch in unicodedata.normalize("NFKC", name))


def parse_weekdays(spec: str) -> int:
    """'mon,tue' or 'mon-fri' -> bitmask; empty or 'all' means every day."""
    spec = spec.strip().lower()
    if spec in ("", "all", "*"):
        return ALL_DAYS
    mask = 0
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        if lo not in WEEKDAYS or (hi and hi not in WEEKDAYS):
            raise ValueError(f"unknown weekday in {part!r}; use mon,tue,wed,thu,fri,sat,sun")
        a = WEEKDAYS.index(lo)
        b = WEEKDAYS.index(hi) if hi else a
        i = a
        while True:
            mask |= 1 << i
            if i == b:
                break
            i = (i + 1) % 7
    return mask


def format_weekdays(mask: int) -> str:
    return ",".join(d for i, d in enumerate(WEEKDAYS) if mask & (1 << i))


def parse_hours(spec: str) -> tuple[int, int]:
    """'07:00-22:30' -> (420, 1350); '22:00-06:00' crosses midnight; '24:00' ends at midnight."""
    try:
        a, b = spec.split("-")
        start, end = _minute(a), _minute(b)
    except ValueError as exc:
        raise ValueError(f"hours {spec!r} must look like HH:MM-HH:MM") from exc
    if start == end or start >= 1440:
        raise ValueError(f"hours {spec!r} must span a non-empty part of the day")
    return start, end


def _minute(hhmm: str) -> int:
    h, m = hhmm.strip().split(":")
    hours, minutes = int(h), int(m)
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ValueError(hhmm)
    return hours * 60 + minutes


def format_hours(hours: tuple[int, int] | None) -> str | None:
    if hours is None:
        return None
    return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in hours)


# At the end, not the top: the version 2 codec builds on this module's fields and checks, so it
# imports this one; parse_pass reaches it through the module, which both import orders complete.
import protocol.epass_bound as _bound  # noqa: E402
