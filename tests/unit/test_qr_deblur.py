"""qr_deblur: the smear's direction from the gradients, nothing spent on a sharp or idle frame."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import segno

from edge.devices.qr_deblur import deblurred, line_kernel, motion_angle, textured_square


def _code(scale: int = 4) -> np.ndarray:
    code = segno.make("MJ2:" + "7" * 200, error="m", micro=False)
    modules = np.array(list(code.matrix_iter(scale=scale, border=4)), np.uint8)
    return np.asarray((1 - modules) * 200 + 30, np.uint8)


def _smeared(image: np.ndarray, length: int, angle: float) -> np.ndarray:
    return np.asarray(cv2.filter2D(image, -1, line_kernel(length, angle)), np.uint8)


@pytest.mark.parametrize("degrees", [0, 30, 75, 120, 160])
def test_direction_of_a_smeared_code(degrees: int) -> None:
    angle = motion_angle(_smeared(_code(), 7, math.radians(degrees)))
    assert angle is not None
    error = abs(math.degrees(angle) - degrees) % 180
    assert min(error, 180 - error) < 15


def test_nothing_for_a_sharp_code_or_an_idle_scene() -> None:
    noise = np.random.default_rng(7).integers(0, 256, (480, 640), dtype=np.uint8)
    idle = np.asarray(cv2.GaussianBlur(noise, (0, 0), 3), np.uint8)
    assert motion_angle(_code()) is None
    assert list(deblurred(idle)) == []
    assert list(deblurred(np.full((480, 640), 128, np.uint8))) == []


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (7, 5), (63, 400), (400, 20)])
def test_nothing_for_an_image_too_small_for_a_code(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    assert list(deblurred(image)) == []


def test_textured_square_finds_the_code() -> None:
    frame = np.full((480, 640), 120, np.uint8)
    code = _code(3)
    frame[200 : 200 + len(code), 330 : 330 + len(code)] = code
    square = textured_square(frame, 384)
    assert square.shape == (384, 384)
    assert np.count_nonzero(square != 120) >= 0.9 * np.count_nonzero(frame != 120)
