"""Printed cards through a real central: every card's QR, rendered at 150 dpi, is the pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from central.auth import Role
from central.cards_font import FontMissingError, find_card_fonts
from central.cards_pdf import CARD_H, CARD_W, CardLayout, qr_module_mm, slots
from edge.devices.qr_decode import decode_frame
from tests.conftest import skip_or_fail
from tests.integration.office_helpers import OFFICE, Office

URL = "/api/v1/passes/cards.pdf"
DPI = 150
PEOPLE = [("张三华", "resident"), ("李四", "tenant"), ("欧阳娜娜", "visitor"),
          ("王五", "staff"), ("赵六", "delivery"), ("钱七", "contractor"), ("孙八", "resident"),
          ("周九", "tenant")]  # fmt: skip


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("pdftoppm", "pdftotext", "pdffonts"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} missing: apt-get install poppler-utils (scripts/ensure-debs.sh)")
    try:
        find_card_fonts()
    except FontMissingError as exc:
        skip_or_fail(str(exc))


def _issue_eight(office: Office, tag: str) -> list[dict[str, Any]]:
    return [
        office.issue(holder=name, kind=kind, unit=f"{tag}号楼{i + 1}单元50{i}")
        for i, (name, kind) in enumerate(PEOPLE)
    ]


def _print(office: Office, ids: list[str], layout: str, tmp_path: Path) -> Path:
    r = office.http.post(URL, json={"pass_ids": ids, "layout": layout},
                         headers=office.as_(Role.ADMIN))  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["cache-control"] == "no-store"
    path = tmp_path / f"cards-{layout}.pdf"
    path.write_bytes(r.content)
    return path


def _render(pdf: Path) -> list[np.ndarray]:
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", str(pdf), str(pdf.with_suffix(""))],
                   check=True, timeout=60)  # fmt: skip
    pages = sorted(pdf.parent.glob(f"{pdf.stem}-*.png"))
    return [cv2.imread(str(p)) for p in pages]


def _card_image(pages: list[np.ndarray], layout: CardLayout, index: int, count: int) -> Any:
    slot = slots(layout, count)[index]
    px = DPI / 25.4
    x0, y0 = int(slot.x * px), int(slot.y * px)
    return pages[slot.page][y0 : y0 + int(CARD_H * px), x0 : x0 + int(CARD_W * px)]


def test_eight_cards_on_a4_each_qr_decodes_to_its_pass(office: Office, tmp_path: Path) -> None:
    issued = _issue_eight(office, "7")
    pdf = _print(office, [p["pass_id"] for p in issued], "a4-8", tmp_path)
    pages = _render(pdf)
    assert len(pages) == 1
    for i, p in enumerate(issued):
        card = _card_image(pages, CardLayout.A4_8, i, len(issued))
        assert decode_frame(card) == p["text"], f"card {i} ({p['display_name']})"
        assert qr_module_mm(p["text"]) >= 0.8
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    for p in issued:
        assert p["display_name"] in text and p["unit"] in text and p["pass_id"] in text
        assert p["holder"] not in text  # only the masked name is printed
    assert OFFICE in text and "住户" in text and "RESIDENT" in text and "施工人员" in text


def test_fonts_are_embedded_not_left_to_the_viewer(office: Office, tmp_path: Path) -> None:
    pdf = _print(office, [office.issue(unit="8号楼1单元101")["pass_id"]], "card", tmp_path)
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True,
                           check=True).stdout.splitlines()[2:]  # fmt: skip
    assert fonts, "no fonts in the PDF"
    for line in fonts:
        assert line.split()[-5] == "yes", line  # the "emb" column


def test_one_card_per_page(office: Office, tmp_path: Path) -> None:
    issued = _issue_eight(office, "9")[:3]
    pages = _render(_print(office, [p["pass_id"] for p in issued], "card", tmp_path))
    assert len(pages) == 3
    for i, p in enumerate(issued):
        assert decode_frame(_card_image(pages, CardLayout.CARD, i, 3)) == p["text"]


def test_unknown_revoked_and_guard_are_refused(office: Office) -> None:
    issued = office.issue(unit="10号楼1单元101")
    admin = office.as_(Role.ADMIN)
    r = office.http.post(URL, json={"pass_ids": ["00" * 8]}, headers=admin)
    assert r.status_code == 404
    guard = office.as_(Role.GUARD)
    r = office.http.post(URL, json={"pass_ids": [issued["pass_id"]]}, headers=guard)
    assert r.status_code == 403
    office.http.post(f"/api/v1/passes/{issued['pass_id']}/revoke", json={"reason": "lost"},
                     headers=admin).raise_for_status()  # fmt: skip
    r = office.http.post(URL, json={"pass_ids": [issued["pass_id"]]}, headers=admin)
    assert r.status_code == 409 and issued["pass_id"] in r.text
