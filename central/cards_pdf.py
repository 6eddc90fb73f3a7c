"""Printed pass cards for residents without a smartphone: a PDF of cards with crop marks.

Sizes are millimetres. Each card is 95 x 68 mm: eight butt against each other on an A4 sheet
(2 x 4, cut along the crop marks), or one sits on an A6 page. The QR symbol is always 46 mm
wide, so its module is 46 / (17 + 4 * version) mm: 1.02 mm for a typical version 7 pass and
0.81 mm for the largest pass a gate accepts (version 10, 57 modules). A gate camera 15-25 cm
from the card sees a 640 px wide field of about 17-29 cm, 0.27-0.45 mm a pixel, so even the
smallest module spans about two pixels or more (three at 15 cm), which zxing reads reliably;
ISO 18004's four-module quiet zone is kept white around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

import segno
from fpdf import FPDF

from central.cards_font import CardFonts
from central.holder_kinds import KIND_NAMES
from protocol.epass import HolderKind

CARD_W, CARD_H = 95.0, 68.0
QR_MM = 46.0
QUIET_MODULES = 4
INSET = 2.5  # white inside each cut line, so a cut a little off never clips the band or code
BAND_H = 11.0
MARK_LEN, MARK_GAP = 5.0, 2.0
A4 = (210.0, 297.0)
A6_LANDSCAPE = (148.0, 105.0)
COLUMNS, ROWS = 2, 4

# Band colour and its text colour (RGB); the kind's name is always printed on the band too.
KIND_COLOURS: dict[HolderKind, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    HolderKind.RESIDENT: ((0, 122, 61), (255, 255, 255)),
    HolderKind.TENANT: ((0, 84, 166), (255, 255, 255)),
    HolderKind.VISITOR: ((240, 140, 0), (0, 0, 0)),
    HolderKind.STAFF: ((106, 27, 154), (255, 255, 255)),
    HolderKind.DELIVERY: ((250, 210, 0), (0, 0, 0)),
    HolderKind.CONTRACTOR: ((110, 76, 40), (255, 255, 255)),
}


class CardLayout(StrEnum):
    A4_8 = "a4-8"
    CARD = "card"


@dataclass(frozen=True, slots=True)
class Card:
    """What one card shows; `display_name` is the masked name the pass carries."""

    text: str
    display_name: str
    unit: str | None
    kind: HolderKind
    valid_from: datetime
    valid_until: datetime
    site: str
    office: str
    timezone: str
    serial: str


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a card sits: its page (0-based) and top-left corner in mm."""

    page: int
    x: float
    y: float


def page_size(layout: CardLayout) -> tuple[float, float]:
    return A4 if layout is CardLayout.A4_8 else A6_LANDSCAPE


def _grid_origin(layout: CardLayout) -> tuple[float, float]:
    width, height = page_size(layout)
    columns, rows = (COLUMNS, ROWS) if layout is CardLayout.A4_8 else (1, 1)
    return (width - columns * CARD_W) / 2, (height - rows * CARD_H) / 2


def slots(layout: CardLayout, count: int) -> list[Slot]:
    """Where each of `count` cards goes, in order (left to right, top to bottom)."""
    x0, y0 = _grid_origin(layout)
    if layout is CardLayout.CARD:
        return [Slot(i, x0, y0) for i in range(count)]
    per_page = COLUMNS * ROWS
    return [
        Slot(i // per_page, x0 + (i % COLUMNS) * CARD_W, y0 + (i % per_page // COLUMNS) * CARD_H)
        for i in range(count)
    ]


def qr_module_mm(text: str) -> float:
    """The printed size of one module of this pass's QR code."""
    return QR_MM / segno.make(text, error="m", micro=False).symbol_size(border=0)[0]


def render_cards(cards: Sequence[Card], layout: CardLayout, fonts: CardFonts) -> bytes:
    """The PDF; fonts are embedded (subset), so it prints the same on any viewer."""
    pdf = FPDF(unit="mm", format=page_size(layout))
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0)
    pdf.c_margin = 0  # the layout places every text itself
    pdf.add_font("cjk", "", str(fonts.regular.path), collection_font_number=fonts.regular.index)
    pdf.add_font("cjk", "B", str(fonts.bold.path), collection_font_number=fonts.bold.index)
    pdf.set_title("menjin pass cards")
    pdf.set_creator("menjin central")
    page = -1
    for card, slot in zip(cards, slots(layout, len(cards)), strict=True):
        if slot.page != page:
            pdf.add_page()
            page = slot.page
            _crop_marks(pdf, layout)
        _card(pdf, card, slot.x, slot.y)
    return bytes(pdf.output())


def _crop_marks(pdf: FPDF, layout: CardLayout) -> None:
    """Short hairlines outside the grid on every cut line, none over a card."""
    x0, y0 = _grid_origin(layout)
    columns, rows = (COLUMNS, ROWS) if layout is CardLayout.A4_8 else (1, 1)
    x1, y1 = x0 + columns * CARD_W, y0 + rows * CARD_H
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)
    for i in range(columns + 1):
        x = x0 + i * CARD_W
        pdf.line(x, y0 - MARK_GAP - MARK_LEN, x, y0 - MARK_GAP)
        pdf.line(x, y1 + MARK_GAP, x, y1 + MARK_GAP + MARK_LEN)
    for j in range(rows + 1):
        y = y0 + j * CARD_H
        pdf.line(x0 - MARK_GAP - MARK_LEN, y, x0 - MARK_GAP, y)
        pdf.line(x1 + MARK_GAP, y, x1 + MARK_GAP + MARK_LEN, y)


def _card(pdf: FPDF, card: Card, x: float, y: float) -> None:
    _band(pdf, card.kind, x + INSET, y + INSET, CARD_W - 2 * INSET)
    qr_top = y + INSET + BAND_H + 1.0
    box = _qr(pdf, card.text, x + INSET, qr_top)
    _details(pdf, card, x + INSET + box + 0.5, qr_top + 2.0, x + CARD_W - INSET)


def _band(pdf: FPDF, kind: HolderKind, x: float, y: float, width: float) -> None:
    fill, ink = KIND_COLOURS[kind]
    zh, en = KIND_NAMES[kind]
    pdf.set_fill_color(*fill)
    pdf.rect(x, y, width, BAND_H, style="F")
    pdf.set_text_color(*ink)
    pdf.set_font("cjk", "B", 20)
    pdf.set_xy(x + 4, y)
    pdf.cell(text=zh, h=BAND_H)
    pdf.set_font("cjk", "B", 12)
    pdf.set_xy(x, y)
    pdf.cell(w=width - 4, h=BAND_H, text=en.upper(), align="R")


def _qr(pdf: FPDF, text: str, x: float, y: float) -> float:
    """Draw the code's dark modules as one rectangle per horizontal run; returns the box size."""
    matrix = segno.make(text, error="m", micro=False).matrix
    module = QR_MM / len(matrix)
    left, top = x + QUIET_MODULES * module, y + QUIET_MODULES * module
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(matrix):
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            pdf.rect(left + start * module, top + r * module, (c - start) * module, module, "F")
    return QR_MM + 2 * QUIET_MODULES * module


def _details(pdf: FPDF, card: Card, x: float, y: float, right: float) -> None:
    width = right - x
    zone = ZoneInfo(card.timezone)
    pdf.set_text_color(0, 0, 0)
    _text(pdf, x, y, width, card.display_name, size=18, bold=True, height=8)
    _text(pdf, x, y + 9, width, card.unit or "—", size=11, bold=True, height=5)
    _text(pdf, x, y + 17, width, "有效期 Valid", size=7, height=3.5)
    _text(pdf, x, y + 20.5, width, _when(card.valid_from, zone) + " 起", size=8.5, height=4)
    _text(pdf, x, y + 24.5, width, _when(card.valid_until, zone) + " 止", size=8.5, height=4)
    _text(pdf, x, y + 30, width, "签发 Issued by", size=7, height=3.5)
    office = card.office or card.site
    _text(pdf, x, y + 33.5, width, office, size=8.5, height=4, lines=2)
    _text(pdf, x, y + 43, width, f"No. {card.serial}", size=7.5, height=3.5)


def _lines(pdf: FPDF, text: str, width: float) -> int:
    if pdf.get_string_width(text) <= width:
        return 1
    lines = pdf.multi_cell(w=width, text=text, dry_run=True, output="LINES")
    return len(lines) if isinstance(lines, list) else 1


def _when(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _text(
    pdf: FPDF,
    x: float,
    y: float,
    width: float,
    text: str,
    *,
    size: float,
    height: float,
    bold: bool = False,
    lines: int = 1,
) -> None:
    """Text that never runs past the card: shrunk until it fits in `lines` lines."""
    pdf.set_font("cjk", "B" if bold else "", size)
    while size > 5 and _lines(pdf, text, width) > lines:
        size -= 0.5
        pdf.set_font_size(size)
    pdf.set_xy(x, y)
    if lines == 1:
        pdf.cell(w=width, h=height, text=text)
    else:
        pdf.multi_cell(w=width, h=height, text=text, max_line_height=height)
