"""Fit a QR symbol's module grid to a located code and sample each module's signed darkness.

Given a rough quadrilateral round a code (zxing's or OpenCV's position of a code they could
not read; a corner may be several modules off), the three finder patterns are searched near
where each version 1-10 would put them, at that version's module size; versions whose
finders match poorly are dropped. For the rest the corner without a finder, which fixes the
perspective, climbs on the correlation with all function patterns (finders, separators,
timing, alignment patterns, quiet zone), and the best grid is refined on all corners, last on
how sharply the module samples split. A flat code seen through a pinhole camera is exactly a
homography of its grid, so no local warp is needed.

Each module's darkness is its distance below the midpoint of the lightest and darkest
modules around it, over the symbol's contrast: a module under glare that washed out its
neighbourhood comes out near 0, unsure, which is what lets the Reed-Solomon decoder treat
its codeword as an erasure (edge/devices/qr_soft.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.devices import qr_layout as layout
from edge.devices.qr_deadline import check
from edge.devices.qr_soft import read_soft

Gray = NDArray[np.uint8]
Float = NDArray[np.float32]
Quad = NDArray[np.float64]  # 4 x 2: corners (x, y) around the symbol, in order round it

_HYPOTHESES = 3  # (corner order, completion) pairs that the finder search refines
# Versions whose finder match falls further below the best version's are not tried.
_FINDER_SLACK = 0.12
# Hill climbing: (step in modules, rounds at most, corners moved). First the fourth corner,
# whose place the finders do not fix, for every version (it may travel 8 modules); then all
# corners of the two best grids on the function patterns; then on the modules' sharpness.
_ALL = (0, 1, 2, 3)
_CLIMB_FOURTH = ((1.0, 12, (2,)), (0.5, 2, (2,)))
_CLIMB_ALL = ((0.5, 3, _ALL), (0.25, 3, _ALL), (0.12, 3, _ALL))
_CLIMB_SHARP = ((0.25, 3, _ALL), (0.12, 3, _ALL))
# Finder searches: (reach, step) in modules, coarse to fine.
_PASSES = ((3.0, 0.5), (0.75, 0.125))
# Modules on a side over which the light and dark levels are taken: 3 follows a glare
# streak's edge, 7 keeps a blurred lone module from setting its own level.
_ENVELOPES = (3, 7)


@cache
def _template(version: int, whole: bool = True) -> tuple[NDArray[np.float64], Float]:
    """Module centres (x, y) of the known modules, one module of quiet zone included, and
    their expected darkness (dark high), centred and of unit norm. Not `whole`: only the
    finders and the timing patterns, which three finder centres place without perspective."""
    n = layout.size(version)
    known = np.zeros((n + 2, n + 2), bool)
    want = np.zeros((n + 2, n + 2), np.float32)
    if whole:
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
    for r, c in layout.alignment_centres(version) if whole else ():
        known[r - 1 : r + 4, c - 1 : c + 4] = True
        want[r - 1 : r + 4, c - 1 : c + 4] = align
    rows, cols = np.nonzero(known)
    centres = np.stack([cols - 1 + 0.5, rows - 1 + 0.5], axis=1).astype(np.float64)
    expected = want[rows, cols] - want[rows, cols].mean()
    return centres, np.asarray(expected / np.linalg.norm(expected), np.float32)


def grid_homography(quad: Quad, n: int) -> NDArray[np.float64]:
    square = np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float32)
    return np.asarray(cv2.getPerspectiveTransform(square, quad.astype(np.float32)), np.float64)


def _sample(image: Float, homography: NDArray[np.float64], points: NDArray[np.float64]) -> Float:
    """The image, interpolated, at module points (x, y) mapped through `homography`."""
    mapped = cv2.perspectiveTransform(points.reshape(-1, 1, 2), homography).reshape(-1, 2)
    count = len(mapped)
    width = 256  # remap takes maps under 32767 on a side
    rows = -(-count // width)
    maps = np.zeros((2, rows * width), np.float32)
    maps[:, :count] = mapped.T
    values = cv2.remap(
        image,
        maps[0].reshape(rows, width),
        maps[1].reshape(rows, width),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(values.reshape(-1)[:count], np.float32)


def _match(image: Float, quad: Quad, version: int, whole: bool = True) -> float:
    """The correlation of the image's darkness with the function patterns under `quad`."""
    centres, want = _template(version, whole)
    values = _sample(image, grid_homography(quad, layout.size(version)), centres)
    values -= values.sum() / values.size  # as .mean(), without its overhead on small arrays
    spread = float(np.sqrt(values @ values))
    return -float(values @ want) / spread if spread > 1e-6 else -1.0


def smoothed(gray: Gray, sigma: float = 0.5) -> Float:
    """The frame as float, lightly blurred against sensor noise and JPEG ringing."""
    return np.asarray(cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma), np.float32)


def completions(quad: Quad) -> list[Quad]:
    """The quad, and the four parallelograms that replace one corner by its neighbours' sum
    less the opposite corner: a detector that found three finders often misplaces the fourth
    corner by several modules, and a finder's own corner is the one it misplaced."""
    out = [quad]
    for k in range(4):
        other = quad.copy()
        other[k] = quad[(k + 1) % 4] + quad[(k + 3) % 4] - quad[(k + 2) % 4]
        out.append(other)
    return out


def fit(
    image: Float,
    quad: Quad,
    versions: range = range(1, 11),
    deadline: float = math.inf,
    fine: bool = True,
) -> tuple[int, Quad, float]:
    """The version, the refined corner quad (top-left corner first) and its match; raises
    DeadlinePassedError once `deadline` (time.perf_counter seconds) has passed. Not `fine`:
    to within a quarter module, for a caller that re-places the grid itself."""
    scored: dict[tuple[int, int], tuple[float, int, Quad]] = {}
    for c, candidate in enumerate(completions(quad)):
        check(deadline)
        for turn in range(4):
            rolled = np.roll(candidate, -turn, axis=0)
            for version in versions:
                score = _match(image, rolled, version)
                if score > scored.get((c, turn), (-2.0,))[0]:
                    scored[(c, turn)] = (score, version, rolled)
    starts: list[tuple[int, Quad]] = []
    for rolled in _distinct(sorted(scored.values(), key=lambda item: -item[0])):
        # The finder search looks for finders of each version's module size; the sizes that
        # match worst are not the code's.
        searched = []
        for version in versions:
            check(deadline)
            searched.append((*_finders(image, rolled, version), version))
        top = max(score for _, score, _ in searched)
        for finders, score, version in searched:
            if score < top - _FINDER_SLACK:
                continue
            module = float(np.linalg.norm(finders[1] - finders[0])) / (layout.size(version) - 7)
            for corners in _on_finders(finders, version, rolled):
                if all(
                    v != version or np.abs(corners - other).max() > module for v, other in starts
                ):
                    starts.append((version, corners))
    # Which version fits shows only once the perspective (the fourth corner) is right.
    grids = [
        (score, version, corners)
        for version, start in starts
        for corners, score in [_climb(image, start, version, _match, _CLIMB_FOURTH, deadline)]
    ]
    best = (-2.0, 0, quad)
    climb = _CLIMB_ALL if fine else _CLIMB_ALL[:-1]
    for _, version, corners in sorted(grids, key=lambda item: -item[0])[:2]:
        corners, score = _climb(image, corners, version, _match, climb, deadline)
        if score > best[0]:
            best = (score, version, corners)
    score, version, corners = best
    if fine:
        corners, _ = _climb(image, corners, version, _sharpness, _CLIMB_SHARP, deadline)
    return version, corners, score


def _distinct(ranked: list[tuple[float, int, Quad]]) -> list[Quad]:
    """The first _HYPOTHESES quads that put some finder corner a module away from the others'."""
    kept: list[Quad] = []
    for _, version, rolled in ranked:
        module = float(np.linalg.norm(rolled[1] - rolled[0])) / layout.size(version)
        if all(np.abs(rolled[[0, 1, 3]] - other[[0, 1, 3]]).max() > module for other in kept):
            kept.append(rolled)
        if len(kept) == _HYPOTHESES:
            break
    return kept


def _sharpness(image: Float, quad: Quad, version: int) -> float:
    """How far the modules' samples spread about their mean: most on the modules' centres."""
    values = _sample(image, grid_homography(quad, layout.size(version)), _centres(version))
    return float(np.abs(values - values.sum() / values.size).sum() / values.size)


@cache
def _centres(version: int) -> NDArray[np.float64]:
    n = layout.size(version)
    rows, cols = np.mgrid[0:n, 0:n]
    return np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1).astype(np.float64)


def _on_finders(finders: NDArray[np.float64], version: int, quad: Quad) -> list[Quad]:
    """`version`'s grid on three finder centres: with `quad`'s perspective, and affine."""
    n = layout.size(version)
    anchors = finder_centres(n).astype(np.float32)
    homography = grid_homography(quad, n)
    predicted = cv2.perspectiveTransform(anchors.reshape(1, 3, 2).astype(np.float64), homography)
    correction = cv2.getAffineTransform(
        predicted.reshape(3, 2).astype(np.float32), finders.astype(np.float32)
    )
    affine = cv2.getAffineTransform(anchors, finders.astype(np.float32))
    return [
        _corners_of(np.vstack([correction, [0, 0, 1]]) @ homography, n),
        _corners_of(np.vstack([affine, [0, 0, 1]]).astype(np.float64), n),
    ]


Objective = Callable[[Float, Quad, int], float]
Climb = tuple[tuple[float, int, tuple[int, ...]], ...]


def _climb(
    image: Float,
    quad: Quad,
    version: int,
    objective: Objective,
    plan: Climb,
    deadline: float = math.inf,
) -> tuple[Quad, float]:
    """Move the grid's corners by the plan's steps while the objective improves."""
    score = objective(image, quad, version)
    module = float(np.linalg.norm(quad[1] - quad[0])) / layout.size(version)
    for step, rounds, corners in plan:
        for _ in range(rounds):
            check(deadline)
            improved = False
            for corner in corners:
                for axis in range(2):
                    for sign in (1.0, -1.0):
                        trial = quad.copy()
                        trial[corner, axis] += sign * step * module
                        trial_score = objective(image, trial, version)
                        if trial_score > score:
                            score, quad, improved = trial_score, trial, True
            if not improved:
                break
    return quad, score


def _finder_template() -> Float:
    pattern = np.full((9, 9), -1.0, np.float32)  # the separator all round, light
    pattern[1:8, 1:8] = 1.0
    pattern[2:7, 2:7] = -1.0
    pattern[3:6, 3:6] = 1.0
    return pattern


_FINDER = _finder_template()


@cache
def _search_points(size: int, reach: float, step: float) -> tuple[NDArray[np.float64], ...]:
    """Offsets to try (m x 2), the lattice of points that all offsets' cell centres lie on
    (1 / step is a whole number, so they share it: a 16th of the samples for the coarse
    pass), and which lattice point each offset's each cell is (m x size^2)."""
    per = round(1 / step)
    count = round(2 * reach / step) + 1
    shifts = -reach + step * np.arange(count)
    offsets = np.stack(np.meshgrid(shifts, shifts), -1).reshape(-1, 2)
    side = count + (size - 1) * per
    axis = -reach - (size - 1) / 2 + step * np.arange(side)
    lattice = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    at, cell = np.arange(count), per * np.arange(size)
    rows = at[:, None, None, None] + cell[None, None, :, None]
    cols = at[None, :, None, None] + cell[None, None, None, :]
    return offsets, lattice, (rows * side + cols).reshape(count * count, size * size)


def _search(
    image: Float,
    homography: NDArray[np.float64],
    centre: tuple[float, float],
    pattern: Float,
    reach: float,
    step: float,
) -> tuple[NDArray[np.float64], float]:
    """Where in the image (x, y) `pattern`, centred at module point `centre`, matches best
    within `reach` modules of where `homography` puts it, and how well (a correlation)."""
    offsets, lattice, cells = _search_points(pattern.shape[0], reach, step)
    values = -_sample(image, homography, lattice + np.asarray(centre, np.float64))[cells]
    values -= values.sum(axis=1, keepdims=True) / values.shape[1]
    want = pattern.reshape(-1) - pattern.mean()
    norms = np.sqrt(np.einsum("ij,ij->i", values, values)) + 1e-6
    scores = values @ want / (norms * float(np.linalg.norm(want)))
    best = int(np.argmax(scores))
    found = np.asarray(centre, np.float64) + offsets[best]
    point = cv2.perspectiveTransform(found.reshape(1, 1, 2), homography).reshape(2)
    return np.asarray(point, np.float64), float(scores[best])


def finder_centres(n: int) -> NDArray[np.float64]:
    """The three finder patterns' centres on an n-module grid (module units)."""
    return np.array([(3.5, 3.5), (n - 3.5, 3.5), (3.5, n - 3.5)], np.float64)


def _corners_of(homography: NDArray[np.float64], n: int) -> Quad:
    square = np.array([[[0, 0], [n, 0], [n, n], [0, n]]], np.float64)
    return np.asarray(cv2.perspectiveTransform(square, homography).reshape(4, 2), np.float64)


def _finders(
    image: Float, quad: Quad, version: int, passes: tuple[tuple[float, float], ...] = _PASSES
) -> tuple[NDArray[np.float64], float]:
    """The three finder centres (x, y) in the image, searched from where `quad` puts them at
    `version`'s module size, and how well finders of that size match there."""
    n = layout.size(version)
    homography = grid_homography(quad, n)
    anchors = finder_centres(n)
    found = anchors
    for reach, step in passes:
        results = [_search(image, homography, a, _FINDER, reach, step) for a in anchors]
        found = np.array([point for point, _ in results])
        predicted = cv2.perspectiveTransform(anchors.reshape(1, 3, 2), homography).reshape(3, 2)
        correction = cv2.getAffineTransform(predicted.astype(np.float32), found.astype(np.float32))
        homography = np.vstack([correction, [0, 0, 1]]) @ homography
    return found, float(np.mean([score for _, score in results]))


def darkness(image: Float, corners: Quad, version: int, envelope: int = 3) -> Float:
    """Each module's signed darkness (n x n): + dark, - light, scaled by the symbol's contrast."""
    n = layout.size(version)
    values = _sample(image, grid_homography(corners, n), _centres(version)).reshape(n, n)
    kernel = np.ones((envelope, envelope), np.uint8)
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


def crop_round(gray: Gray, quad: Quad) -> tuple[Gray | None, Quad]:
    """The part of the frame round a located code (a fifth of its side more on each side),
    and the quad, made clockwise, in its pixels; None for a quad too small to be a code."""
    quad = clockwise(np.asarray(quad, np.float64))
    side = float(np.max(np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1)))
    if side < 21:
        return None, quad
    margin = int(0.2 * side) + 4
    height, width = gray.shape
    x0 = max(0, int(quad[:, 0].min()) - margin)
    y0 = max(0, int(quad[:, 1].min()) - margin)
    x1 = min(width, int(quad[:, 0].max()) + margin)
    y1 = min(height, int(quad[:, 1].max()) + margin)
    return np.ascontiguousarray(gray[y0:y1, x0:x1]), quad - np.array([x0, y0], np.float64)


def read_located(gray: Gray, quad: Quad, deadline: float = math.inf) -> str | None:
    """The text of the code inside `quad`, sampled softly and decoded with erasures, or None;
    raises DeadlinePassedError once `deadline` has passed."""
    crop, local = crop_round(gray, quad)
    if crop is None:
        return None
    image = smoothed(crop)
    version, corners, _ = fit(image, local, deadline=deadline)
    for envelope in _ENVELOPES:
        check(deadline)
        text = read_soft(darkness(image, corners, version, envelope))
        if text is not None:
            return text
    return None
