from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.base45 import ALPHABET, Base45Error, b45decode, b45encode


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"", "")],
)
def test_rfc9285_vectors(raw: bytes, text: str) -> None:
    assert b45encode(raw) == text
    assert b45decode(text) == raw


@given(st.binary(max_size=300))
def test_roundtrip(raw: bytes) -> None:
    assert b45decode(b45encode(raw)) == raw


@pytest.mark.parametrize("bad", ["GGW", "a", "ABCD", "abc", "€€€", "AB\x00", "::::"])
def test_invalid_text_is_rejected(bad: str) -> None:
    with pytest.raises(Base45Error):
        b45decode(bad)


def _decode_chunk_by_chunk(text: str) -> bytes:
    """RFC 9285 section 4.2 as written, one chunk at a time: what b45decode must agree with."""
    values = [ALPHABET.index(ch) for ch in text]
    if len(values) % 3 == 1:
        raise Base45Error("dangling")
    out = bytearray()
    for i in range(0, len(values), 3):
        chunk = values[i : i + 3]
        n = sum(v * 45**k for k, v in enumerate(chunk))
        if n >= (1 << 16 if len(chunk) == 3 else 1 << 8):
            raise Base45Error("out of range")
        out += n.to_bytes(len(chunk) - 1, "big")
    return bytes(out)


@given(st.text(alphabet=ALPHABET, max_size=4400))
def test_decode_agrees_with_the_rfc_chunk_by_chunk(text: str) -> None:
    # Texts of every length and chunk value, past the precomputed lanes too; most are invalid.
    try:
        expected: bytes | None = _decode_chunk_by_chunk(text)
    except Base45Error:
        expected = None
    if expected is None:
        with pytest.raises(Base45Error):
            b45decode(text)
    else:
        assert b45decode(text) == expected


@given(st.lists(st.integers(0, 0xFFFF), max_size=1500))
def test_every_chunk_value_up_to_ffff_decodes(values: list[int]) -> None:
    raw = b"".join(v.to_bytes(2, "big") for v in values)
    assert b45decode(b45encode(raw)) == raw
