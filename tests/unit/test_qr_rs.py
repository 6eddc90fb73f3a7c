"""qr_rs: errors-and-erasures Reed-Solomon over GF(256), within the bound and never past it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices import qr_rs


@st.composite
def damaged(draw: st.DrawFn) -> tuple[list[int], list[int], int, list[int], int]:
    """A codeword, a copy with v errors and e erasures where 2v + e <= check, and both."""
    check = draw(st.integers(2, 30))
    data = draw(st.lists(st.integers(0, 255), min_size=1, max_size=80))
    word = qr_rs.encode(data, check)
    erasures = draw(st.integers(0, check))
    errors = draw(st.integers(0, (check - erasures) // 2))
    places = draw(
        st.lists(
            st.integers(0, len(word) - 1),
            min_size=erasures + errors,
            max_size=erasures + errors,
            unique=True,
        )
    )
    received = list(word)
    for place in places:
        received[place] ^= draw(st.integers(1, 255))
    return word, received, check, places[:erasures], errors


def test_field_and_generator() -> None:
    assert qr_rs.mul(2, 128) == 0x1D  # x^8 reduced by x^8 + x^4 + x^3 + x^2 + 1
    assert all(qr_rs.mul(a, qr_rs.div(1, a)) == 1 for a in range(1, 256))
    # ISO/IEC 18004 Annex A: the generator for 10 check symbols, as exponents of alpha.
    exponents = [qr_rs.LOG[c] for c in qr_rs.generator(10)]
    assert exponents == [0, 251, 67, 46, 61, 118, 70, 64, 94, 32, 45]


def test_encode_matches_the_standard_example() -> None:
    # ISO/IEC 18004 Annex I: "01234567" as version 1-M.
    data = [16, 32, 12, 86, 97, 128, 236, 17, 236, 17, 236, 17, 236, 17, 236, 17]
    check = [165, 36, 212, 193, 237, 54, 199, 135, 44, 85]
    assert qr_rs.encode(data, 10)[16:] == check


@settings(max_examples=300, deadline=None)
@given(damaged())
def test_corrects_within_the_bound(case: tuple[list[int], list[int], int, list[int], int]) -> None:
    word, received, check, erasures, _ = case
    assert qr_rs.decode(received, check, erasures) == word


@settings(max_examples=200, deadline=None)
@given(damaged())
def test_margin_refuses_what_would_use_the_last_check_symbols(
    case: tuple[list[int], list[int], int, list[int], int],
) -> None:
    word, received, check, erasures, errors = case
    used = 2 * errors + len(erasures)
    result = qr_rs.decode(received, check, erasures, margin=2)
    if used <= check - 2:
        assert result == word
    else:
        assert result is None or (result == word and received == word)


@pytest.mark.parametrize("errors", [6, 7, 9, 13])
def test_refuses_beyond_the_bound(errors: int) -> None:
    """Past 2v + e <= check a decode must fail or, rarely, land on another codeword: never
    return a word that is not a codeword. With a margin of 2 it must not land at all here."""
    check = 10
    word = qr_rs.encode(list(range(40, 66)), check)
    wrong_words = 0
    for trial in range(60):
        received = list(word)
        for k in range(errors):
            received[(7 * trial + 5 * k) % len(word)] ^= 1 + (31 * trial + k) % 255
        result = qr_rs.decode(received, check, margin=2)
        assert result != word
        if result is not None:
            wrong_words += 1
            assert not any(qr_rs.syndromes(result, check))
    assert wrong_words == 0


def test_refuses_bad_input() -> None:
    word = qr_rs.encode([1, 2, 3], 4)
    assert qr_rs.decode(word, 4, erasures=[0, 1, 2, 3, 4]) is None  # more erasures than checks
    assert qr_rs.decode(word, 4, erasures=[99]) is None
    assert qr_rs.decode([0] * 300, 4) is None
    assert qr_rs.decode(word, 4, erasures=[0, 1, 2, 3]) == word
