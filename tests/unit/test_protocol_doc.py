"""docs/protocol.md is part of the contract: its vectors and message list must match the code."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from edge.config import GateSection
from edge.decide import GateContext, decide
from protocol import messages
from protocol.epass import (
    HolderKind,
    PassData,
    encode_pass,
    format_hours,
    key_id_of,
    parse_hours,
    parse_pass,
)
from tests.unit.test_decide import MemoryCache

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def vectors() -> dict[str, Any]:
    match = re.search(r"```json vectors\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert match, "docs/protocol.md lost its test vectors block"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


VEC = vectors()
KEY = SigningKey(bytes.fromhex(VEC["signing_seed_hex"]))


def context() -> GateContext:
    g = GateSection.model_validate(VEC["gate"])
    return GateContext(
        site=g.site,
        gate=g.gate,
        trusted={key_id_of(KEY.verify_key): KEY.verify_key},
        direction=g.direction,
        tz=__import__("zoneinfo").ZoneInfo(g.timezone),
        temperature=g.temperature,
        fever_threshold_c=g.fever_threshold,
        anti_passback=g.anti_passback,
        clock_skew_s=g.clock_skew_s,
    )


def test_key() -> None:
    assert bytes(KEY.verify_key).hex() == VEC["public_key_hex"]
    assert key_id_of(KEY.verify_key).hex() == VEC["key_id"]


@pytest.mark.parametrize("vector", VEC["passes"], ids=lambda v: v["name"])
def test_pass_vector_encodes_parses_and_decides(vector: dict[str, Any]) -> None:
    f = vector["fields"]
    data = PassData(
        pass_id=bytes.fromhex(f["pass_id"]),
        site=f["site"],
        kind=HolderKind(f["kind"]),
        valid_from=f["valid_from"],
        valid_until=f["valid_until"],
        display_name=f["display_name"],
        gates=tuple(f["gates"]),
        hours=parse_hours(f["hours"]) if f["hours"] else None,
        weekdays=f["weekdays"],
        max_uses=f["max_uses"],
    )
    assert encode_pass(data, KEY) == vector["text"]
    parsed = parse_pass(vector["text"]).data
    assert parsed == data
    assert format_hours(parsed.hours) == f["hours"]
    ctx = context()
    for p in vector["presentations"]:
        d = decide(vector["text"], ctx, MemoryCache(), datetime.fromisoformat(p["at"]),
                   p["temperature_c"])  # fmt: skip
        assert d.reason.value == p["reason"], p


@pytest.mark.parametrize("vector", VEC["invalid"], ids=lambda v: v["reason"])
def test_invalid_vectors(vector: dict[str, str]) -> None:
    d = decide(
        vector["text"],
        context(),
        MemoryCache(),
        datetime.fromisoformat("2026-06-01T09:00+08:00"),
        36.5,
    )
    assert (d.granted, d.reason.value) == (False, vector["reason"])


def test_every_message_model_and_event_type_is_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    models = [
        name
        for name, obj in vars(messages).items()
        if isinstance(obj, type)
        and issubclass(obj, messages._Message)
        and obj is not messages._Message
    ]
    assert models
    for name in models:
        assert f"### {name}" in doc, f"message model {name} is missing from docs/protocol.md"
    for event_type in messages.EventType:
        assert f"`{event_type.value}`" in doc, f"event type {event_type} is undocumented"


def test_every_topic_kind_is_documented() -> None:
    from protocol.topics import GateTopic, central_live_topic, central_status_topic

    doc = DOC.read_text(encoding="utf-8")
    for kind in GateTopic:
        assert f"`menjin/v1/{{site}}/{{gate}}/{kind.value}`" in doc, kind
    assert "`menjin/v1/{site}/sync`" in doc
    assert f"`{central_status_topic()}`" in doc
    assert f"`{central_live_topic()}`" in doc
