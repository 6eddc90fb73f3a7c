"""The console's words: both catalogs have the same keys, every key a template or script uses
exists, every code the gate can send has words, and no template carries a literal string."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from central.auth import Role
from protocol.epass import HolderKind
from protocol.live import AlertKind, Flag, Reason
from protocol.messages import EventType

CONSOLE = Path(__file__).resolve().parents[2] / "central" / "console"
TEMPLATES = sorted((CONSOLE / "templates").rglob("*.html"))
SCRIPTS = sorted((CONSOLE / "static" / "js").glob("*.js"))
ALLOWED_LITERALS = {"°C"}  # a unit symbol reads the same in both languages


def catalog(lang: str) -> dict[str, str]:
    words: dict[str, str] = json.loads((CONSOLE / "catalogs" / f"{lang}.json").read_text("utf-8"))
    return words


def test_both_catalogs_have_the_same_keys_and_no_empty_words() -> None:
    zh, en = catalog("zh-CN"), catalog("en")
    assert set(zh) == set(en)
    assert all(zh.values()) and all(en.values())


def used_keys() -> set[str]:
    keys = set()
    for path in TEMPLATES:
        keys |= set(re.findall(r"\bt(?:\.plural)?\('([a-z_.]+)'", path.read_text("utf-8")))
        keys |= set(re.findall(r"\blabel='([a-z_.]+)'", path.read_text("utf-8")))
    for path in SCRIPTS:
        keys |= set(re.findall(r"\bt\(\"([a-z_.]+)\"", path.read_text("utf-8")))
    return keys


def test_every_key_used_exists() -> None:
    keys = used_keys()
    assert len(keys) > 50
    missing = sorted(k for k in keys if k not in catalog("zh-CN"))
    assert missing == []


@pytest.mark.parametrize(
    ("prefix", "codes"),
    [
        ("reason", [r.value for r in Reason] + ["unlock_failure"]),
        ("type", [t.value for t in EventType]),
        ("holder", [h.value for h in HolderKind]),
        ("alert.kind", [k.value for k in AlertKind]),
        ("flag", [f.value for f in Flag]),
        ("role", [r.value for r in Role]),
    ],
)
def test_every_code_has_words(prefix: str, codes: list[str]) -> None:
    for lang in ("zh-CN", "en"):
        assert [c for c in codes if f"{prefix}.{c}" not in catalog(lang)] == [], lang


class _Literals(HTMLParser):
    """Collects text and human-facing attribute values that are not template expressions."""

    SPOKEN: ClassVar[set[str]] = {"title", "alt", "placeholder", "aria-label"}

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k in self.SPOKEN and v]

    def handle_data(self, data: str) -> None:
        self.found.append(data)


def literals(source: str) -> list[str]:
    bare = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", source, flags=re.S)
    parser = _Literals()
    parser.feed(bare)
    words = []
    for text in parser.found:
        for token in text.split():
            if token not in ALLOWED_LITERALS and re.search(r"[^\W\d_]", token):
                words.append(token)
    return words


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_no_literal_string_in_a_template(path: Path) -> None:
    assert literals(path.read_text("utf-8")) == []


def test_the_literal_check_can_fail() -> None:
    assert literals("<p>{{ t('a.b') }} 通过</p><img alt='photo'>") == ["通过", "photo"]
    assert literals("<p>{{ t('a.b') }} · 36.6 °C</p>") == []
