"""The Chinese font printed cards embed: configured, else found through fontconfig."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FONT_PACKAGE = "fonts-noto-cjk"
# Best first: Noto (Debian's default CJK font) has a bold face; the others are fallbacks.
_PREFERRED = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
              "WenQuanYi Zen Hei", "Droid Sans Fallback")  # fmt: skip
# fpdf2 reads TrueType and OpenType (CFF) outlines, also inside TTC collections.
_FORMATS = {"TrueType", "CFF"}


class FontMissingError(RuntimeError):
    """No font with Chinese glyphs is installed; the message names the package to install."""


@dataclass(frozen=True, slots=True)
class FontFace:
    path: Path
    index: int = 0  # the face inside a TTC collection


@dataclass(frozen=True, slots=True)
class CardFonts:
    regular: FontFace
    bold: FontFace


def _fc_list() -> list[tuple[Path, int, str, str]]:
    """(file, index, family, style) of every installed face that covers Simplified Chinese."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    out = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [fc_list, "--format", "%{file}\t%{index}\t%{family[0]}\t%{style[0]}\t%{fontformat}\n",
         ":lang=zh-cn"],
        capture_output=True, text=True, timeout=20, check=False,
    ).stdout  # fmt: skip
    faces = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 5 and parts[4] in _FORMATS and parts[1].isdigit():
            faces.append((Path(parts[0]), int(parts[1]), parts[2], parts[3]))
    return faces


def _rank(family: str) -> int:
    return _PREFERRED.index(family) if family in _PREFERRED else len(_PREFERRED)


def find_card_fonts(path: str = "", index: int = 0) -> CardFonts:
    """A configured font file (used for both weights), else the best installed Chinese family."""
    if path:
        if not Path(path).is_file():
            raise FontMissingError(f"cards.font {path} does not exist")
        face = FontFace(Path(path), index)
        return CardFonts(face, face)
    faces = sorted(_fc_list(), key=lambda f: (_rank(f[2]), f[2], f[0]))
    if not faces:
        raise FontMissingError(
            f"no Chinese font is installed for printing cards; install the Debian package "
            f"{FONT_PACKAGE} (apt-get install {FONT_PACKAGE}) or set [cards] font"
        )
    family = faces[0][2]
    same = [f for f in faces if f[2] == family]
    regular = next((f for f in same if f[3] == "Regular"), same[0])
    bold = next((f for f in same if f[3] == "Bold"), regular)
    return CardFonts(FontFace(regular[0], regular[1]), FontFace(bold[0], bold[1]))
