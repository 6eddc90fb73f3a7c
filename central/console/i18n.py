"""The console's words: one catalog per language, keyed by meaning; times in the site's zone.

Chinese first: zh-CN unless the user picked English (`?lang=en`, remembered in a cookie). A
missing key raises, so a test rendering every page finds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request

CATALOG_DIR = Path(__file__).parent / "catalogs"
LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
LANG_COOKIE = "menjin_lang"


@cache
def catalog(lang: str) -> dict[str, str]:
    words: dict[str, str] = json.loads((CATALOG_DIR / f"{lang}.json").read_text("utf-8"))
    return words


def pick_lang(request: Request) -> str:
    """`?lang=` first, then the remembered choice, then Chinese."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LANGS:
            return str(candidate)
    return DEFAULT_LANG


@dataclass(frozen=True)
class Words:
    """What a page needs to speak one language in one time zone."""

    lang: str
    tz: ZoneInfo

    def __call__(self, key: str, **values: Any) -> str:
        text = catalog(self.lang)[key]
        return text.format(**values) if values else text

    def plural(self, key: str, n: int, **values: Any) -> str:
        """`key.one` when n is 1 (English: "1 gate"), else `key` ("2 gates"); n is `{n}`."""
        one = f"{key}.one"
        return self(one if n == 1 and one in catalog(self.lang) else key, n=n, **values)

    def maybe(self, prefix: str, value: object) -> str:
        """A code's words (`reason.expired`), or the code itself when it has none."""
        if value is None or value == "":
            return ""
        return catalog(self.lang).get(f"{prefix}.{value}", str(value))

    def flags(self, flags: object) -> str:
        """The decision's flags in words, e.g. `发烧`."""
        return "，".join(self.maybe("flag", f) for f in flags) if isinstance(flags, list) else ""

    def when(self, value: datetime | str | None) -> str:
        """`12月1日 08:03:15` in the site's zone."""
        if value is None:
            return ""
        at = datetime.fromisoformat(value) if isinstance(value, str) else value
        local = at.astimezone(self.tz)
        months = self("time.months").split(",")
        return self(
            "time.datetime", month=local.month, month_name=months[local.month - 1],
            day=local.day, hms=local.strftime("%H:%M:%S"),
        )  # fmt: skip

    def age(self, value: datetime | str | None, now: datetime) -> str:
        """`3分钟前`: how long ago, in the largest whole unit."""
        if value is None:
            return ""
        at = datetime.fromisoformat(value) if isinstance(value, str) else value
        return self.duration((now - at).total_seconds())

    def duration(self, seconds: float) -> str:
        s = max(0, int(seconds))
        for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
            if s >= size:
                return self(f"age.{unit}", n=s // size)
        return self("age.seconds", n=s)

    def client_words(self) -> dict[str, str]:
        """The subset the page's JavaScript formats with (reasons, kinds, times, outcomes)."""
        keep = (
            "reason.",
            "result.",
            "type.",
            "alert.kind.",
            "holder.",
            "time.",
            "age.",
            "js.",
            "flag.",
            "sound.",
            "open.",
        )
        return {k: v for k, v in catalog(self.lang).items() if k.startswith(keep)}


def words_for(request: Request) -> Words:
    tz = ZoneInfo(request.app.state.settings.console.timezone)
    return Words(pick_lang(request), tz)
