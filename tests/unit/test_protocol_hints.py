"""SyncRequest.passes and SyncDelta.passes: exact bounds, and the old JSON when unused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from pydantic import ValidationError

from protocol.epass import PassTooLargeError, parse_pass
from protocol.epass_bound import MAX_PASS_BYTES, encode_bound_pass
from protocol.messages import MAX_BOUND_PASS_TEXT, MAX_HINTED_PASSES, SyncDelta, SyncRequest
from tests.unit.livecode_helpers import ISSUER, RESIDENT, Phone, ed25519_phone, p256_phone

OLD_KEYS = ["v", "version", "snapshot", "revoked", "unrevoked"]


@pytest.mark.parametrize("phone", [ed25519_phone(), p256_phone()], ids=["ed25519", "p256"])
def test_the_bound_is_the_longest_static_pass_there_can_be(phone: Phone) -> None:
    device = phone.device
    name_bytes = 17 if device.alg.value == "ed25519" else 16  # docs/protocol.md, Byte budget
    longest = encode_bound_pass(replace(RESIDENT, display_name="A" * name_bytes), device, ISSUER)
    assert parse_pass(longest).proof is None
    assert MAX_PASS_BYTES == 139 and len(longest) == MAX_BOUND_PASS_TEXT == 213
    SyncDelta(version=1, snapshot=False, passes=[longest])
    with pytest.raises(PassTooLargeError):
        encode_bound_pass(replace(RESIDENT, display_name="A" * (name_bytes + 1)), device, ISSUER)


@pytest.mark.parametrize(
    "texts",
    [
        ["A" * (MAX_BOUND_PASS_TEXT + 1)],
        ["MJ2:abc"],
        ["MJ2:A\n"],
        ["MJ2:"] * (MAX_HINTED_PASSES + 1),
    ],
    ids=["too-long", "lower-case", "newline", "too-many"],
)
def test_texts_out_of_bounds_are_refused(texts: list[str]) -> None:
    with pytest.raises(ValidationError):
        SyncDelta(version=1, snapshot=False, passes=texts)


def test_within_bounds_junk_is_left_to_the_gate() -> None:
    junk = ["", "HELLO WORLD", "MJ1:" + "0" * 209, "$%*+-./: "]
    assert SyncDelta(version=1, snapshot=False, passes=junk).passes == junk


def test_without_passes_the_json_is_that_of_before() -> None:
    old = SyncDelta(version=18, snapshot=False, unrevoked=["0123456789abcdef"])
    assert list(json.loads(old.model_dump_json())) == OLD_KEYS
    new = SyncDelta(version=18, snapshot=False, passes=["MJ2:00"])
    assert list(json.loads(new.model_dump_json())) == [*OLD_KEYS, "passes"]
    request = SyncRequest.model_validate_json('{"v": 1, "since": 17}')
    assert request.passes is False
    assert SyncRequest.model_validate_json('{"v": 1, "since": 17, "passes": true}').passes
