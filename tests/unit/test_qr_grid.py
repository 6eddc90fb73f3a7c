"""qr_grid and the decoder's soft last look: fit a located code's grid, read what zxing cannot."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import segno
import zxingcpp

from edge.devices import qr_grid
from edge.devices.qr_decode import decode_with_stage
from tests.qr_frames import GOAL_SEED, frame

_TEXT = "MJ2:" + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:" * 6


def _photo(tilt: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """A version 10 code at 4 px a module, seen in perspective in a 640x480 frame, and the
    symbol's corners in the frame."""
    code = segno.make(_TEXT, error="m", mode="alphanumeric", boost_error=False, micro=False)
    modules = np.array(list(code.matrix_iter(scale=4, border=4)), np.uint8)
    flat = np.asarray((1 - modules) * 170 + 50, np.uint8)
    side, inner = len(flat), 16
    source = np.array(
        [[inner, inner], [side - inner, inner], [side - inner] * 2, [inner, side - inner]],
        np.float32,
    )
    target = np.array(
        [[150, 90], [430, 60 + 40 * tilt], [460, 380], [130, 400 - 60 * tilt]], np.float32
    )
    warp = cv2.getPerspectiveTransform(source, target)
    image = cv2.warpPerspective(flat, warp, (640, 480), borderValue=110)
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    noise = np.random.default_rng(2).normal(0, 4, image.shape)
    return np.asarray(np.clip(image + noise, 0, 255), np.uint8), target.astype(np.float64)


@pytest.mark.parametrize(
    "shift",
    [(0, 0, 0, 0), (3, -3, 0, 0), (0, 0, 14, 10), (-5, 4, -12, 12)],
    ids=["exact", "corner-off", "fourth-off", "both-off"],
)
def test_fit_finds_version_and_grid_from_a_rough_quad(shift: tuple[int, int, int, int]) -> None:
    image, corners = _photo()
    rough = corners.copy()
    rough[0] += shift[:2]
    rough[2] += shift[2:]  # the corner without a finder, where detectors err most
    version, fitted, score = qr_grid.fit(qr_grid.smoothed(image), rough)
    assert version == 10
    assert score > 0.8
    module = np.linalg.norm(corners[1] - corners[0]) / 57
    assert np.abs(fitted - corners).max() < 0.5 * module
    assert qr_grid.read_located(image, rough) == _TEXT


def test_any_corner_order_and_direction() -> None:
    image, corners = _photo()
    for turn in range(4):
        quad = np.roll(corners, turn, axis=0)
        assert qr_grid.read_located(image, quad) == _TEXT
        assert qr_grid.read_located(image, quad[::-1]) == _TEXT


def test_nothing_where_there_is_no_code() -> None:
    noise = np.random.default_rng(4).integers(0, 256, (480, 640), dtype=np.uint8)
    scene = np.asarray(cv2.GaussianBlur(noise, (0, 0), 2), np.uint8)
    quad = np.array([[100, 100], [300, 110], [310, 300], [90, 290]], np.float64)
    assert qr_grid.read_located(scene, quad) is None
    assert qr_grid.read_located(scene, quad / 20) is None  # too small to hold a code


@pytest.mark.usefixtures("unhurried")
def test_strip_light_card_read_only_by_the_soft_look() -> None:
    """Goal frame 73: a card whose strip light clipped a band of the data to white. zxing-cpp
    locates the code and fails its checksum; the soft look treats the band as erasures."""
    hard = frame(GOAL_SEED, 73)
    gray = cv2.cvtColor(hard.image, cv2.COLOR_BGR2GRAY)
    found = zxingcpp.read_barcodes(gray, return_errors=True)
    assert found and all(b.error is not None for b in found)
    assert decode_with_stage(hard.image) == (hard.text, "soft")
    assert decode_with_stage(hard.image, soft=False) == (None, None)  # a camera's off-budget frame


@pytest.mark.usefixtures("unhurried")
def test_the_soft_budget_is_spent_only_on_frames_that_reach_the_soft_look() -> None:
    asked: list[bool] = []

    def due() -> bool:
        asked.append(True)
        return True

    easy = cv2.cvtColor(np.asarray(_photo(0.0)[0]), cv2.COLOR_GRAY2BGR)
    assert decode_with_stage(easy, soft=due)[0] is not None
    assert asked == []  # read by a cheap stage: the camera's budget is untouched
    hard = frame(GOAL_SEED, 73)
    assert decode_with_stage(hard.image, soft=due) == (hard.text, "soft")
    assert asked == [True]


def test_a_soft_look_that_raises_is_no_code_and_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edge.devices import qr_decode

    def broken(*_args: object) -> tuple[str | None, str | None]:
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(qr_decode, "_soft_attempts", broken)
    errors: list[Exception] = []
    hard = frame(GOAL_SEED, 73)
    assert decode_with_stage(hard.image, errors.append) == (None, None)
    assert [type(e) for e in errors] == [OverflowError]
