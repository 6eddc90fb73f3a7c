from __future__ import annotations

import struct
import unicodedata

import pytest
import segno
from hypothesis import assume, given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from protocol.base45 import b45encode
from protocol.epass import (
    _CONTROL,
    ALL_DAYS,
    ANY_TIME,
    MAX_FIELD_BYTES,
    MAX_TEXT_LEN,
    HolderKind,
    PassData,
    PassFormatError,
    PassTooLargeError,
    check_pass,
    encode_pass,
    format_hours,
    key_id_of,
    mask_name,
    parse_hours,
    parse_pass,
    parse_weekdays,
    signature_valid,
)

KEY = SigningKey(bytes(range(32)))
OTHER = SigningKey(bytes(range(1, 33)))

field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda s: len(s.encode()) <= MAX_FIELD_BYTES)

pass_data = st.builds(
    PassData,
    pass_id=st.binary(min_size=8, max_size=8),
    site=field_text,
    kind=st.sampled_from(list(HolderKind)),
    valid_from=st.integers(0, 2**31),
    valid_until=st.integers(2**31 + 1, 2**32 - 1),
    display_name=st.just("") | field_text,
    gates=st.lists(field_text, max_size=3).map(tuple),
    hours=st.none()
    | st.tuples(st.integers(0, 1439), st.integers(0, 1440)).filter(lambda h: h[0] != h[1]),
    weekdays=st.integers(1, ALL_DAYS),
    max_uses=st.integers(0, 0xFFFF),
)


@given(pass_data)
def test_roundtrip_preserves_every_field(data: PassData) -> None:
    try:
        text = encode_pass(data, KEY)
    except PassTooLargeError:
        assume(False)  # too big for a QR v10-M: refused, tested on its own below
        return
    signed = parse_pass(text)
    assert signed.data == data
    assert signed.key_id == key_id_of(KEY.verify_key)
    assert signature_valid(signed, KEY.verify_key)
    assert not signature_valid(signed, OTHER.verify_key)


def test_text_is_qr_alphanumeric_and_fits_version_10_m() -> None:
    data = PassData(
        pass_id=b"\xff" * 8,
        site="hutong-12-dongcheng",
        kind=HolderKind.CONTRACTOR,
        valid_from=1_700_000_000,
        valid_until=1_800_000_000,
        display_name="欧阳*娜",
        gates=("east", "west", "north", "south-bike"),
        hours=(22 * 60, 6 * 60),
        weekdays=0b0011111,
        max_uses=65535,
    )
    text = encode_pass(data, KEY)
    qr = segno.make(text, error="m", micro=False)
    assert qr.mode == "alphanumeric"
    assert qr.version <= 10


def test_oversized_pass_is_refused_not_truncated() -> None:
    data = PassData(
        pass_id=b"\x01" * 8,
        site="s" * 40,
        kind=HolderKind.RESIDENT,
        valid_from=0,
        valid_until=10,
        gates=tuple(f"gate-{i:02d}-with-a-long-name" for i in range(8)),
    )
    with pytest.raises(PassTooLargeError, match="311"):
        encode_pass(data, KEY)
    assert MAX_TEXT_LEN == 311
    assert segno.make("A" * MAX_TEXT_LEN, error="m", micro=False).version == 10
    assert segno.make("A" * (MAX_TEXT_LEN + 1), error="m", micro=False).version == 11


@pytest.mark.parametrize(
    "text",
    ["", "MJ1:", "MJ2:ABC", "mj1:ABC", "MJ1:abc", "MJ1:" + "0" * 400, "MJ1:\x00\x01", "HELLO"],
)
def test_malformed_text_raises_format_error(text: str) -> None:
    with pytest.raises(PassFormatError):
        parse_pass(text)


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三华", "张*华"),
        ("李四", "李*"),
        ("王", "王"),
        ("欧阳娜娜", "欧**娜"),
        ("Wang  Fang", "W***g"),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    "bad",
    [
        "13812345678",
        "110101199003077777",
        "张 13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "138.1234.5678",
        "１３８　１２３４　５６７８",  # full-width digits and ideographic spaces
        "11010119900307777X",
        "110101 19900307 777x",
        "①③⑧①②③④⑤⑥⑦⑧",
    ],
)
def test_phone_or_id_number_is_never_a_name(bad: str) -> None:
    with pytest.raises(ValueError, match="phone or ID"):
        mask_name(bad)


SEPARATORS = [" ", "-", ".", "\u3000", "\u00a0", "\u2013", "\u2014", "\uff0d", "\uff0e", "/", "_"]


def _digits(count: int, last: str = "") -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from("0123456789"), min_size=count, max_size=count).map(
        lambda ds: [*ds, last] if last else ds
    )


number_in_name = st.tuples(
    st.one_of(_digits(11), _digits(17, "X"), _digits(18)),
    st.lists(st.sampled_from(["", *SEPARATORS]), min_size=19, max_size=19),
    st.booleans(),
    st.sampled_from(["", "张", "Wang "]),
)


@given(number_in_name)
def test_a_number_in_a_name_is_refused_whatever_its_separators(
    case: tuple[list[str], list[str], bool, str],
) -> None:
    digits, separators, full_width, around = case
    if full_width:  # U+FF10.. are the full-width digits NFKC folds back to ASCII
        digits = [chr(0xFF10 + int(d)) if d.isdigit() else d for d in digits]
    number = "".join(d + sep for d, sep in zip(digits, separators, strict=False))
    with pytest.raises(ValueError, match="phone or ID"):
        mask_name(around + number + around)


@given(st.text(st.characters(whitelist_categories=("Lo", "Lu", "Ll", "Zs")), max_size=20))
def test_a_name_without_digits_is_masked(name: str) -> None:
    assume(" ".join(name.split()))
    masked = mask_name(name)
    assert masked[0] == " ".join(name.split())[0]


def test_four_digits_are_still_a_name() -> None:
    assert mask_name("王 1 2 3 4") == "王***4"


def pack_raw(
    key: SigningKey,
    *,
    version: int = 1,
    kind: int = 0,
    valid: tuple[int, int] = (1_700_000_000, 1_800_000_000),
    hours: tuple[int, int] = (ANY_TIME, ANY_TIME),
    weekdays: int = ALL_DAYS,
    strings: tuple[bytes, ...] = (b"hutong-12", b""),
    gate_count: int | None = None,
    extra: bytes = b"",
) -> bytes:
    """A signed binary pass built from the layout table alone, with no validity checks.

    strings are the site, the display name and then the gate ids; gate_count defaults to how
    many gate ids there are. Used to make passes no issuer would sign, with good signatures.
    """
    head = struct.pack(">B4s8sBIIHHBH", version, key_id_of(key.verify_key), b"\x01" * 8, kind,
                       *valid, *hours, weekdays, 0)  # fmt: skip
    site, name, *gates = strings
    body = head + bytes([len(site)]) + site + bytes([len(name)]) + name
    body += bytes([len(gates) if gate_count is None else gate_count])
    body += b"".join(bytes([len(g)]) + g for g in gates) + extra
    return body + key.sign(body).signature


def test_pack_raw_follows_the_same_layout_as_encode_pass() -> None:
    data = PassData(
        pass_id=b"\x01" * 8,
        site="hutong-12",
        kind=HolderKind.RESIDENT,
        valid_from=1_700_000_000,
        valid_until=1_800_000_000,
        gates=("east",),
    )
    assert "MJ1:" + b45encode(pack_raw(KEY, strings=(b"hutong-12", b"", b"east"))) == (
        encode_pass(data, KEY)
    )


def _parses(raw: bytes) -> bool:
    try:
        parse_pass("MJ1:" + b45encode(raw))
    except PassFormatError:
        return False
    return True


@given(
    st.integers(0, 2),
    st.integers(0, 8),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.tuples(
        st.sampled_from([0, 1, 1439, 1440, 1441, ANY_TIME]) | st.integers(0, 0xFFFF),
        st.sampled_from([0, 1, 1439, 1440, 1441, ANY_TIME]) | st.integers(0, 0xFFFF),
    ),
    st.integers(0, 255),
)
def test_parser_refuses_exactly_what_an_issuer_may_not_sign(
    version: int, kind: int, valid: tuple[int, int], hours: tuple[int, int], weekdays: int
) -> None:
    raw = pack_raw(KEY, version=version, kind=kind, valid=valid, hours=hours, weekdays=weekdays)
    data = PassData(
        pass_id=b"\x01" * 8,
        site="hutong-12",
        kind=HolderKind.RESIDENT,
        valid_from=valid[0],
        valid_until=valid[1],
        hours=None if hours == (ANY_TIME, ANY_TIME) else hours,
        weekdays=weekdays,
    )
    try:
        check_pass(data)
        signable = version == 1 and kind < len(HolderKind)
    except ValueError:
        signable = False
    assert _parses(raw) is signable


@pytest.mark.parametrize(
    ("strings", "gate_count", "extra", "ok"),
    [
        ((b"s" * 48, "张*华".encode(), b"g" * 48), None, b"", True),
        ((b"s" * 49, b""), None, b"", False),  # site over 48 bytes
        ((b"s", "名".encode() * 17), None, b"", False),  # display name 51 bytes
        ((b"s", b"", b"g" * 49), None, b"", False),  # gate id over 48 bytes
        ((b"", b""), None, b"", False),  # empty site
        ((b"s", b""), None, b"", True),  # an empty gate list is every gate
        ((b"s", b"", b"east", b""), None, b"", False),  # empty gate id
        ((b"s", b"", *[b"g"] * 32), None, b"", True),
        ((b"s", b"", *[b"g"] * 33), None, b"", False),  # more than 32 gates
        ((b"s", b"\xff"), None, b"", False),  # not UTF-8
        ((b"s", b"\xed\xa0\x80"), None, b"", False),  # an encoded surrogate
        ((b"s", b"\xc0\xaf"), None, b"", False),  # an overlong form
        ((b"s\x00", b""), None, b"", False),  # control character
        ((b"s", b"\xc2\x85"), None, b"", False),  # C1 control character (NEL)
        ((b"s", b"", b"east"), 2, b"", False),  # the count runs into the signature
        ((b"s", b"", b"east"), None, b"\x00", False),  # a byte left over
    ],
)
def test_text_field_rules(
    strings: tuple[bytes, ...], gate_count: int | None, extra: bytes, ok: bool
) -> None:
    assert _parses(pack_raw(KEY, strings=strings, gate_count=gate_count, extra=extra)) is ok


def test_control_characters_are_category_cc() -> None:
    assert {c for c in map(chr, range(0x110000)) if unicodedata.category(c) == "Cc"} == {
        *map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0))
    }  # fmt: skip
    # check_pass searches with a regex of those ranges, not by category.
    assert all(
        bool(_CONTROL.search(c)) is (unicodedata.category(c) == "Cc")
        for c in map(chr, range(0x110000))
    )


@pytest.mark.parametrize(
    ("spec", "mask"),
    [("", 0x7F), ("mon", 1), ("mon,wed", 5), ("mon-fri", 0x1F), ("sat-mon", 0b1100001)],
)
def test_parse_weekdays(spec: str, mask: int) -> None:
    assert parse_weekdays(spec) == mask


@pytest.mark.parametrize("bad", ["monday", "mon,,tue", "xyz"])
def test_bad_weekdays(bad: str) -> None:
    with pytest.raises(ValueError, match="weekday"):
        parse_weekdays(bad)


def test_hours() -> None:
    assert parse_hours("07:00-22:30") == (420, 1350)
    assert parse_hours("22:00-06:00") == (1320, 360)
    assert parse_hours("00:00-24:00") == (0, 1440)
    assert format_hours((1320, 360)) == "22:00-06:00"
    for bad in ["7-22", "08:00-08:00", "25:00-01:00", "08:60-09:00"]:
        with pytest.raises(ValueError, match="hours"):
            parse_hours(bad)
