"""The mirror's keys: a canonical pass id as its integer, anything else as it is."""

from __future__ import annotations

import pytest

from edge.pass_mirror import live_key, pass_key


@pytest.mark.parametrize("pass_id", ["0123456789abcdef", "0000000000000000", "ffffffffffffffff"])
def test_a_canonical_pass_id_is_filed_as_its_integer(pass_id: str) -> None:
    assert pass_key(pass_id) == int(pass_id, 16)
    assert live_key(pass_id, 7) == int(pass_id, 16) << 32 | 7


@pytest.mark.parametrize(
    "pass_id",
    [
        "0x0123456789abcd",  # int(..., 16) takes a 0x prefix,
        "+123456789abcdef",  # a sign,
        "-123456789abcdef",
        " 123456789abcdef",  # surrounding space,
        "123456789abcdef\n",
        "0123_4567_89abcd",  # underscores
        "٠١٢٣٤٥٦٧٨٩abcdef",  # and other scripts' digits
        "0123456789ABCDEF",  # upper case names another text
        "0123456789abcdeg",
        "0123456789abcde",
        "0123456789abcdef0",
        "",
    ],
)
def test_any_other_text_is_filed_as_it_is(pass_id: str) -> None:
    assert pass_key(pass_id) == pass_id
    assert live_key(pass_id, 7) == (pass_id, 7)
