"""qr_soft and qr_layout: read a symbol from soft module values, erasures beyond hard decoding."""

from __future__ import annotations

import numpy as np
import pytest
import segno

from edge.devices import qr_layout as layout
from edge.devices.qr_soft import parse_segments, read_soft

_MODES = {
    "numeric": "0123456789",
    "alphanumeric": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:",
    "byte": "abcXYZ!@#~é",
}


def _dark(code: segno.QRCode) -> np.ndarray:
    modules = np.array(list(code.matrix_iter(scale=1, border=0)), np.float32)
    return np.asarray(2 * modules - 1, np.float32)


def _text(rng: np.random.Generator, alphabet: str, length: int) -> str:
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), length))


@pytest.mark.parametrize("version", range(1, 11))
@pytest.mark.parametrize("level", "LMQH")
def test_clean_symbols_of_every_version_level_mode_and_mask(version: int, level: str) -> None:
    rng = np.random.default_rng(version * 10 + "LMQH".index(level))
    for mask in range(8):
        mode = list(_MODES)[mask % 3]
        text = _text(rng, _MODES[mode], int(rng.integers(1, 8)))
        code = segno.make(
            text, version=version, error=level, mode=mode, mask=mask, boost_error=False, micro=False
        )
        assert read_soft(_dark(code)) == text


def test_block_tables_hold_every_codeword_once() -> None:
    for version in range(1, 11):
        cells = layout.data_cells(version)
        assert len(cells) >= 8 * layout.codeword_count(version)
        assert len(cells) == len(set(cells))
        for level in "LMQH":
            indices = sorted(i for block in layout.block_indices(version, level) for i in block)
            assert indices == list(range(layout.codeword_count(version)))


def _live_code() -> tuple[str, segno.QRCode]:
    text = "MJ2:" + _text(np.random.default_rng(5), _MODES["alphanumeric"][:36], 290)
    code = segno.make(text, error="m", mode="alphanumeric", boost_error=False, micro=False)
    assert code.version == 10
    return text, code


def _codeword_cells(version: int, codewords: list[int]) -> tuple[np.ndarray, np.ndarray]:
    cells = np.array(layout.data_cells(version))
    picked = np.concatenate([cells[8 * i : 8 * i + 8] for i in codewords])
    return picked[:, 0], picked[:, 1]


@pytest.mark.parametrize("damaged", [14, 18, 24])
def test_unsure_codewords_are_erasures_beyond_what_hard_decoding_corrects(damaged: int) -> None:
    """Version 10-M has 26 check symbols a block: hard decoding corrects 13 codewords. Flip
    every bit of `damaged` codewords a block: as unsure values they are erasures and read
    (up to 26 - MARGIN); as sure values they are errors and must give no text, not a wrong one."""
    text, code = _live_code()
    blocks = layout.block_indices(10, "M")
    victims = [index for block in blocks for index in block[-damaged:]]
    rows, cols = _codeword_cells(10, victims)
    unsure = _dark(code)
    unsure[rows, cols] *= -0.05
    sure = _dark(code)
    sure[rows, cols] *= -1.0
    assert read_soft(unsure) == text
    assert read_soft(sure) is None


def test_too_many_unsure_codewords_give_nothing() -> None:
    _, code = _live_code()
    victims = [index for block in layout.block_indices(10, "M") for index in block[:25]]
    rows, cols = _codeword_cells(10, victims)
    dark = _dark(code)
    dark[rows, cols] *= -0.05
    assert read_soft(dark) is None
    dark[rows, cols] = 0.0
    assert read_soft(dark) is None


def test_format_read_through_damage() -> None:
    text, code = _live_code()
    dark = _dark(code)
    first, _ = layout.format_cells(10)
    for r, c in first[:4]:
        dark[r, c] *= -1.0  # the first copy is wrong in 4 bits; the second is whole
    assert read_soft(dark) == text


def test_not_a_symbol() -> None:
    assert read_soft(np.zeros((21, 21), np.float32)) is None
    assert read_soft(np.ones((22, 22), np.float32)) is None
    assert read_soft(np.ones((101, 101), np.float32)) is None  # version 21: not read here
    noise = np.random.default_rng(3).normal(0, 1, (57, 57)).astype(np.float32)
    assert read_soft(noise) is None


def test_segments_and_padding() -> None:
    # Version 1-M "01234567" (ISO/IEC 18004 Annex I): numeric, then the standard padding.
    data = [16, 32, 12, 86, 97, 128, 236, 17, 236, 17, 236, 17, 236, 17, 236, 17]
    assert parse_segments(data, 1) == "01234567"
    assert parse_segments([*data[:6], 0, *data[6:-1]], 1) == "01234567"  # segno's extra byte
    assert parse_segments([*data[:6], 236, 236, *data[8:]], 1) is None  # bad padding
    assert parse_segments([0x70, *data[1:]], 1) is None  # ECI: not in a pass
    assert parse_segments([0] * 16, 1) is None  # no segment at all
