from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.base45 import Base45Error, b45decode, b45encode


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
