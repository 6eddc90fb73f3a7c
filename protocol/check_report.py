"""The result table of `menjin gate check` and `menjin central check`: rows in, text out.

Pure formatting: a check produces CheckLines naming catalog keys and their parameters; this
module looks the keys up in one language's catalog (protocol/check_catalog.py) and lays out a
table, a JSON document, or the single line a refused start-up prints.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from protocol.check_catalog import CATALOGS, Lang

Param = str | int | float


class CheckStatus(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but worth a look; does not block
    FAIL = "fail"  # must be fixed before the part is ready
    SKIP = "skip"  # not checked (not configured, not asked for, or blocked by an earlier line)


OK, WARN, FAIL, SKIP = CheckStatus.OK, CheckStatus.WARN, CheckStatus.FAIL, CheckStatus.SKIP


@dataclass(frozen=True)
class CheckLine:
    """One checked fact: `check.<check>`, `message` and `hint.<hint>` are catalog keys."""

    check: str
    status: CheckStatus
    message: str
    params: Mapping[str, Param] = field(default_factory=dict)
    hint: str | None = None

    def texts(self, catalog: Mapping[str, str]) -> tuple[str, str, str]:
        """Return the check's name, its message and its hint ("" for none) in one language."""
        name = catalog[f"check.{self.check}"]
        message = catalog[self.message].format(**self.params)
        hint = catalog[f"hint.{self.hint}"].format(**self.params) if self.hint else ""
        return name, message, hint


def ready(lines: Sequence[CheckLine]) -> bool:
    return all(line.status is not CheckStatus.FAIL for line in lines)


def _width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def render_table(title: str, lines: Sequence[CheckLine], lang: Lang) -> str:
    """The table a technician reads: status, check, result; each hint indented beneath."""
    catalog = CATALOGS[lang]
    rows = [(catalog[f"status.{line.status.value}"], *line.texts(catalog)) for line in lines]
    status_w = max([_width(catalog["head.status"]), *(_width(r[0]) for r in rows)])
    name_w = max([_width(catalog["head.check"]), *(_width(r[1]) for r in rows)])
    out = [title, ""]
    out.append(f"{_pad(catalog['head.status'], status_w)}  {_pad(catalog['head.check'], name_w)}  "
               f"{catalog['head.result']}")  # fmt: skip
    for status, name, message, hint in rows:
        out.append(f"{_pad(status, status_w)}  {_pad(name, name_w)}  {message}")
        if hint:
            out.append(f"{' ' * (status_w + name_w + 4)}→ {hint}")
    failed = sum(line.status is CheckStatus.FAIL for line in lines)
    out.append("")
    out.append(catalog["summary.ready"] if not failed else catalog["summary.fix"].format(n=failed))
    return "\n".join(out) + "\n"


def render_json(lines: Sequence[CheckLine], lang: Lang) -> str:
    """The same result for scripts: stable ids and statuses, texts in the chosen language."""
    catalog = CATALOGS[lang]
    checks = []
    for line in lines:
        name, message, hint = line.texts(catalog)
        checks.append(
            {
                "check": line.check,
                "status": line.status.value,
                "name": name,
                "message": message,
                "hint": hint or None,
                "facts": dict(line.params),
                "message_key": line.message,
            }
        )
    return json.dumps({"ready": ready(lines), "lang": lang.value, "checks": checks},
                      ensure_ascii=False, indent=2)  # fmt: skip


def one_line(line: CheckLine, lang: Lang = Lang.EN) -> str:
    """A failed line as the one sentence a command that cannot start prints."""
    name, message, hint = line.texts(CATALOGS[lang])
    return f"{name}: {message}" + (f" ({hint})" if hint else "")
