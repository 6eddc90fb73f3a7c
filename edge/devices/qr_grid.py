"""Fit a QR symbol's module grid to a located code and sample each module's signed darkness.

Given a quadrilateral around a code (zxing's or OpenCV's position of a code they could not
read), each version 1-10 and each of the four corner orders gets a homography from module
coordinates to the frame; the one whose function patterns (finders, separators, timing,
alignment patterns and the quiet zone) the image matches best is refined by moving its
corners a fraction of a module at a time while the match improves. A flat code seen through
a pinhole camera is exactly a homography of its grid, so no local warp is needed.

Each module's darkness is its distance below the midpoint of the lightest and darkest
modules around it, over the symbol's dark-light contrast: a module under glare that washed
out its neighbourhood comes out near 0, unsure, which is what lets the Reed-Solomon decoder
treat its codeword as an erasure (edge/devices/qr_soft.py).
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.devices import qr_layout as layout
from edge.devices.qr_soft import read_soft

Gray = NDArray[np.uint8]
Float = NDArray[np.float32]
Quad = NDArray[np.float64]  # 4 x 2: corners (x, y) around the symbol, in order round it

_STEPS = (0.5, 0.25, 0.12)  # corner moves, in modules
_ROUNDS = 4
_ENVELOPE = 3


@cache
def _template(version: int) -> tuple[NDArray[np.float64], Float]:
    """Module centres (x, y) of the known modules, one module of quiet zone included, and
    their expected darkness (+1 dark, -1 light)."""
    n = layout.size(version)
    known = np.zeros((n + 2, n + 2), bool)
    want = np.zeros((n + 2, n + 2), np.float32)
    known[0, :] = known[-1, :] = known[:, 0] = known[:, -1] = True
    want[...] = -1.0
    finder = -np.ones((7, 7), np.float32)
    finder[0, :] = finder[-1, :] = finder[:, 0] = finder[:, -1] = 1.0
    finder[2:5, 2:5] = 1.0
    for r, c in ((0, 0), (0, n - 7), (n - 7, 0)):
        known[1 + max(0, r - 1) : 1 + min(n, r + 8), 1 + max(0, c - 1) : 1 + min(n, c + 8)] = True
        want[1 + r : 8 + r, 1 + c : 8 + c] = finder
    timing = np.where(np.arange(n) % 2 == 0, 1.0, -1.0).astype(np.float32)
    for i in range(8, n - 8):
        known[1 + 6, 1 + i] = known[1 + i, 1 + 6] = True
        want[1 + 6, 1 + i] = want[1 + i, 1 + 6] = timing[i]
    align = -np.ones((5, 5), np.float32)
    align[0, :] = align[-1, :] = align[:, 0] = align[:, -1] = 1.0
    align[2, 2] = 1.0
    for r, c in layout.alignment_centres(version):
        known[r - 1 : r + 4, c - 1 : c + 4] = True
        want[r - 1 : r + 4, c - 1 : c + 4] = align
    rows, cols = np.nonzero(known)
    centres = np.stack([cols - 1 + 0.5, rows - 1 + 0.5], axis=1).astype(np.float64)
    return centres, want[rows, cols].astype(np.float32)


def _homography(quad: Quad, n: int) -> NDArray[np.float64]:
    square = np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float32)
    return np.asarray(cv2.getPerspectiveTransform(square, quad.astype(np.float32)), np.float64)


def _sample(image: Float, homography: NDArray[np.float64], points: NDArray[np.float64]) -> Float:
    mapped = cv2.perspectiveTransform(points.reshape(-1, 1, 2), homography).reshape(-1, 2)
    xs = mapped[:, 0].astype(np.float32).reshape(1, -1)
    ys = mapped[:, 1].astype(np.float32).reshape(1, -1)
    values = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(values.reshape(-1), np.float32)


def _match(image: Float, quad: Quad, version: int) -> float:
    """The correlation of the image's darkness with the function patterns under `quad`."""
    centres, want = _template(version)
    values = -_sample(image, _homography(quad, layout.size(version)), centres)
    spread = float(values.std())
    if spread <= 1e-6:
        return -1.0
    return float(np.mean((values - values.mean()) * want) / (spread * float(want.std())))


def smoothed(gray: Gray, quad: Quad) -> Float:
    """The frame as float, blurred over about a third of the smallest module it could hold."""
    side = float(np.mean(np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1)))
    sigma = max(0.5, 0.3 * side / layout.size(layout.MAX_VERSION))
    return np.asarray(cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma), np.float32)


def fit(image: Float, quad: Quad, versions: range = range(1, 11)) -> tuple[int, Quad, float]:
    """The version, the refined corner quad (top-left corner first) and its match."""
    best = (-2.0, 0, quad)
    for version in versions:
        for turn in range(4):
            rolled = np.roll(quad, -turn, axis=0)
            score = _match(image, rolled, version)
            if score > best[0]:
                best = (score, version, rolled)
    score, version, corners = best
    corners = corners.copy()
    module = float(np.linalg.norm(corners[1] - corners[0])) / layout.size(version)
    for step in _STEPS:
        for _ in range(_ROUNDS):
            improved = False
            for corner in range(4):
                for axis in range(2):
                    for sign in (1.0, -1.0):
                        trial = corners.copy()
                        trial[corner, axis] += sign * step * module
                        trial_score = _match(image, trial, version)
                        if trial_score > score:
                            score, corners, improved = trial_score, trial, True
            if not improved:
                break
    return version, corners, score


def darkness(image: Float, corners: Quad, version: int) -> Float:
    """Each module's signed darkness (n x n): + dark, - light, scaled by the symbol's contrast."""
    n = layout.size(version)
    rows, cols = np.mgrid[0:n, 0:n]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1).astype(np.float64)
    values = _sample(image, _homography(corners, n), centres).reshape(n, n)
    kernel = np.ones((_ENVELOPE, _ENVELOPE), np.uint8)
    light = cv2.dilate(values, kernel, borderType=cv2.BORDER_REPLICATE)
    dark = cv2.erode(values, kernel, borderType=cv2.BORDER_REPLICATE)
    middle = (light + dark) / 2
    contrast = float(np.percentile(light - dark, 75))
    return np.asarray((middle - values) / max(contrast / 2, 1.0), np.float32)


def clockwise(quad: Quad) -> Quad:
    """The quad's corners in clockwise order on the image (y down): a camera never mirrors."""
    x, y = quad[:, 0], quad[:, 1]
    area = float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    return quad if area >= 0 else quad[::-1].copy()


def read_located(gray: Gray, quad: Quad) -> str | None:
    """The text of the code inside `quad`, sampled softly and decoded with erasures, or None."""
    quad = clockwise(np.asarray(quad, np.float64))
    side = float(np.max(np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1)))
    if side < 21:
        return None
    margin = int(0.2 * side) + 4
    height, width = gray.shape
    x0 = max(0, int(quad[:, 0].min()) - margin)
    y0 = max(0, int(quad[:, 1].min()) - margin)
    x1 = min(width, int(quad[:, 0].max()) + margin)
    y1 = min(height, int(quad[:, 1].max()) + margin)
    local = quad - np.array([x0, y0], np.float64)
    image = smoothed(np.ascontiguousarray(gray[y0:y1, x0:x1]), local)
    version, corners, _ = fit(image, local)
    return read_soft(darkness(image, corners, version))
