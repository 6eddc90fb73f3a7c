"""docs/protocol.md documents every live-stream model with an example that validates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from protocol import live

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def examples() -> dict[str, str]:
    found = re.findall(r"```json live (\w+)\n(.*?)```", DOC.read_text("utf-8"), re.S)
    return dict(found)


def test_every_live_model_has_an_example() -> None:
    documented = set(examples())
    assert documented == {model.__name__ for model in live.LIVE_KINDS.values()}


@pytest.mark.parametrize("name", sorted(examples()))
def test_each_example_validates_against_its_model(name: str) -> None:
    model = getattr(live, name)
    parsed = model.model_validate_json(examples()[name])
    again = json.loads(parsed.model_dump_json())
    assert model.model_validate(again) == parsed


def test_every_shared_code_is_documented() -> None:
    doc = DOC.read_text("utf-8")
    for enum in (live.Flag, live.AlertKind, live.AlertState):
        for member in enum:
            assert f"`{member.value}`" in doc, member
