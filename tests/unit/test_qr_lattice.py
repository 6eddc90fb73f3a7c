"""qr_lattice and qr_blurfit: read motion-blurred codes by solving for their modules."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import cv2
import numpy as np
import pytest
import segno

from edge.devices import qr_decode, qr_grid, qr_lattice, qr_layout
from edge.devices.qr_blurfit import read_smeared, refine, textured_quads
from edge.devices.qr_deadline import DeadlinePassedError
from edge.devices.qr_decode import decode_with_stage
from edge.devices.qr_lattice import Smear
from edge.devices.qr_soft import read_soft
from tests.qr_frames import GOAL_SEED, frame
from tests.qr_timing import soft_timer

_TEXT = "MJ2:" + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:" * 6
_SMEAR = Smear(6.0, 0.6, 1.0)


def _smeared(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A version 10 code at 3 px a module, slightly tilted, smeared 6 px; the frame, the
    homography from module coordinates to its pixels, and the true modules (1 dark)."""
    code = segno.make(_TEXT, error="m", mode="alphanumeric", boost_error=False, micro=False)
    modules = np.array(list(code.matrix_iter(scale=1, border=0)), np.uint8)
    n = len(modules)
    square = np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float32)
    target = np.array([[200, 120], [371, 130], [365, 300], [195, 292]], np.float32)
    homography = np.asarray(cv2.getPerspectiveTransform(square, target), np.float64)
    up = 8  # draw the symbol finely, then warp it down: area sampling like a camera's
    flat = np.kron(np.pad(1 - modules, 4, constant_values=1), np.ones((up, up))).astype(np.float32)
    scale = np.array([[1 / up, 0, -4], [0, 1 / up, -4], [0, 0, 1]], np.float64)
    warp = homography @ scale
    sharp = cv2.warpPerspective(flat * 160 + 50, warp, (640, 480), flags=cv2.INTER_AREA)
    sharp[sharp == 0] = 110
    line = qr_lattice.line_kernel(_SMEAR.length, _SMEAR.angle)
    image = cv2.GaussianBlur(cv2.filter2D(sharp, -1, line), (0, 0), _SMEAR.sigma)
    noise = np.random.default_rng(seed).normal(0, 3, image.shape)
    return np.asarray(np.clip(image + noise, 0, 255), np.uint8), homography, modules


def test_solving_on_the_lattice_reads_what_sampling_cannot() -> None:
    image, homography, modules = _smeared()
    n = len(modules)
    data = ~qr_layout.function_modules(10)
    sampled = qr_grid.darkness(qr_grid.smoothed(image), qr_grid._corners_of(homography, n), 10)
    assert read_soft(sampled) is None
    dark, _ = qr_lattice.solve(image.astype(np.float32), homography, 10, _SMEAR)
    wrong = np.mean(((dark > 0) != (modules == 1))[data])
    assert wrong < 0.01 < np.mean(((sampled > 0) != (modules == 1))[data])
    assert read_soft(dark) == _TEXT


def test_the_residual_ranks_the_true_smear_first() -> None:
    image, homography, _ = _smeared()
    start = Smear(8.0, 0.8, 0.7)
    ranked = qr_lattice.ranked_smears(image.astype(np.float32), homography, 10, start, 1e9)
    best = ranked[0]
    assert abs(best.length - _SMEAR.length) <= 1 and abs(best.angle - _SMEAR.angle) < 0.15


def test_a_wrong_smear_fits_worse_and_gives_no_text_never_a_wrong_one() -> None:
    image = _smeared()[0].astype(np.float32)
    homography = _smeared()[1]
    _, true_residual = qr_lattice.solve(image, homography, 10, _SMEAR)
    for smear in (Smear(2.0, 2.2, 0.5), Smear(8.0, 2.0, 2.0)):
        dark, residual = qr_lattice.solve(image, homography, 10, smear)
        assert residual > 1.2 * true_residual
        assert read_soft(dark) is None


def test_refine_puts_a_grid_modules_off_back_on_the_code() -> None:
    image, homography, _ = _smeared()
    nudge = np.array([[1.0, 0.0, 4.0], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]])  # 1.3 modules off
    fitted, angle, length, match = refine(image.astype(np.float32), nudge @ homography, 10, 0.4)
    truth = qr_grid._corners_of(homography, 57)
    assert np.abs(qr_grid._corners_of(fitted, 57) - truth).max() < 1.0
    assert match > 0.8 and abs(angle - _SMEAR.angle) <= 0.2 and abs(length - 6.0) <= 2


def test_the_texture_locator_finds_the_smeared_code_and_not_a_blank_wall() -> None:
    image, homography, _ = _smeared()
    truth = qr_grid._corners_of(homography, 57)
    quads = textured_quads(image)
    assert quads
    found = qr_grid.clockwise(quads[0])
    assert min(np.abs(np.roll(found, turn, axis=0) - truth).max() for turn in range(4)) < 20
    assert read_smeared(image, quads[0], 1.0, math.inf) == _TEXT
    wall = np.asarray(cv2.GaussianBlur(np.full((480, 640), 120, np.uint8), (0, 0), 3), np.uint8)
    assert textured_quads(wall) == []


@pytest.mark.usefixtures("unhurried")
def test_goal_frame_92_is_read_only_by_the_lattice_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """Goal frame 92: a live code smeared 6 px, 2.9 px a module; no stage locates it."""
    hard = frame(GOAL_SEED, 92)
    assert decode_with_stage(hard.image) == (hard.text, "lattice")
    monkeypatch.setattr(qr_decode, "_lattice_attempts", lambda *_: (None, None))
    assert decode_with_stage(hard.image) == (None, None)


def test_a_frame_whose_deadline_passes_in_the_lattice_look_gives_no_text_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Goal frame 92 reads only after 250-450 ms of lattice look; with 100 ms it gives up."""
    deadline_ms, slack_ms = 100.0, 60.0
    spent: list[float] = []
    monkeypatch.setattr(qr_decode, "SOFT_DEADLINE_MS", deadline_ms)
    errors: list[Exception] = []
    with soft_timer(spent):
        assert decode_with_stage(frame(GOAL_SEED, 92).image, errors.append) == (None, None)
    assert len(spent) == 1 and spent[0] < deadline_ms + slack_ms
    assert errors == []  # running out of time is no decoder fault


def _fit(image: np.ndarray, homography: np.ndarray, deadline: float) -> object:
    rough = qr_grid._corners_of(homography, 57) + 2.0
    return qr_grid.fit(qr_grid.smoothed(image), rough, deadline=deadline)


def _refine(image: np.ndarray, homography: np.ndarray, deadline: float) -> object:
    return refine(image.astype(np.float32), homography, 10, 0.6, deadline)


def _rank(image: np.ndarray, homography: np.ndarray, deadline: float) -> object:
    pixels = image.astype(np.float32)
    return qr_lattice.ranked_smears(pixels, homography, 10, _SMEAR, math.inf, deadline)


def _solve(image: np.ndarray, homography: np.ndarray, deadline: float) -> object:
    return qr_lattice.solve(image.astype(np.float32), homography, 10, _SMEAR, deadline=deadline)


@pytest.mark.parametrize("step", [_fit, _refine, _rank, _solve])
def test_each_dear_step_stops_soon_after_its_deadline(
    step: Callable[[np.ndarray, np.ndarray, float], object],
) -> None:
    """The ranking may instead stop early with what it has; a solve never returns half done."""
    image, homography, _ = _smeared()
    start = time.perf_counter()
    step(image, homography, math.inf)
    whole = time.perf_counter() - start
    start = time.perf_counter()
    try:
        step(image, homography, start + whole / 4)
        stopped = False
    except DeadlinePassedError:
        stopped = True
    assert time.perf_counter() - start < whole / 4 + 0.03
    assert stopped or step is _rank
