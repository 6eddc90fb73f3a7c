"""The decode pipeline on the real QR photo set, and `menjin qr decode` on files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli_qr import qr_app
from edge.devices.qr_decode import decode_frame, read_image
from tests.conftest import skip_or_fail

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "qr-photos"
# benchmarks/bench_qr.py measured 172 of 179 (ZXing's Java reader: 157); a small margin
# keeps the test about regressions, not about one borderline photo.
MIN_DECODED = 170
# Speed is the benchmark's business (benchmarks/bench_qr.py), not a timed test's.


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    """Every N.png of the photo set, or a skip (a failure under MENJIN_STRICT_ENV)."""
    pngs = sorted(PHOTOS.glob("set-*/*.png"))
    if not pngs:
        skip_or_fail(f"QR photo set not found at {PHOTOS}")
    return pngs


def test_photo_set_decodes_exactly(photos: list[Path]) -> None:
    decoded, wrong = 0, []
    for png in photos:
        text = decode_frame(read_image(png))
        if text is None:
            continue
        if text.encode() == png.with_suffix(".txt").read_bytes():
            decoded += 1
        else:
            wrong.append(png.relative_to(PHOTOS).as_posix())
    assert decoded >= MIN_DECODED, f"decoded {decoded} of {len(photos)}"
    # set-2/13's label reads "photograph" where the code (and set-2/12) says "photography".
    assert set(wrong) <= {"set-2/13.png"}


def test_cli_prints_one_json_line_per_file(photos: list[Path], tmp_path: Path) -> None:
    crlf = PHOTOS / "set-1" / "16.png"
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    empty = tmp_path / "empty.png"
    empty.touch()
    files = [crlf, tmp_path / "missing.png", not_an_image, empty]

    result = CliRunner().invoke(qr_app, ["decode", *map(str, files)])

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]
    assert lines[0]["text"].encode() == crlf.with_suffix(".txt").read_bytes()
    assert isinstance(lines[0]["ms"], float)
    assert "error" not in lines[0]
    for line in lines[1:]:
        assert line["text"] is None
        assert line["error"]
