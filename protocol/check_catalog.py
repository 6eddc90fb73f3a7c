"""The texts of `menjin gate check` and `menjin central check`, one catalog per language.

Keys say what a text means (`port.denied`, `hint.port.denied`), never how it is built: each
text is a whole sentence with named fields, because Chinese word order is not English's.
A test fails when a key or a field is missing from one language.
"""

from __future__ import annotations

from enum import StrEnum

from protocol.check_catalog_en import EN
from protocol.check_catalog_zh import ZH_CN


class Lang(StrEnum):
    ZH_CN = "zh-CN"
    EN = "en"


CATALOGS: dict[Lang, dict[str, str]] = {Lang.EN: EN, Lang.ZH_CN: ZH_CN}

__all__ = ["CATALOGS", "EN", "ZH_CN", "Lang"]
