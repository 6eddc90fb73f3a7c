"""Every example payload docs/protocol.md shows for a message model validates against it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from protocol import messages

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
_SECTION = re.compile(r"^### (\w+)\n(.*?)(?=^#{2,3} )", re.S | re.M)
_EXAMPLE = re.compile(r"```json\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    out = []
    for name, body in _SECTION.findall(DOC.read_text("utf-8")):
        model = getattr(messages, name, None)
        if isinstance(model, type) and issubclass(model, messages._Message):
            out += [(name, text) for text in _EXAMPLE.findall(body)]
    return out


def test_the_sync_messages_have_examples() -> None:
    names = [name for name, _ in examples()]
    assert {"SyncAnnouncement", "SyncRequest", "SyncDelta"} <= set(names)
    assert names.count("SyncRequest") >= 2 and names.count("SyncDelta") >= 2  # with `passes`


@pytest.mark.parametrize(("name", "text"), examples(), ids=lambda v: str(v)[:24])
def test_example_validates(name: str, text: str) -> None:
    model: type[BaseModel] = getattr(messages, name)
    parsed = model.model_validate_json(text)
    # Nothing the example says is lost or added by the model (defaults aside).
    assert json.loads(parsed.model_dump_json(exclude_unset=True)) == json.loads(text)
