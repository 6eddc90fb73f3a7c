"""Read a motion-blurred QR code on its module lattice: locate it, place its grid, undo the smear.

The decoder's very last look (edge/devices/qr_decode.py), for a frame whose gradients show a
smear and that no other stage read. With 4-7 px of motion on 2.6-4.5 px modules, 9-25 % of
the modules sample wrong even on the exact grid and zxing's finder scan does not locate the
code at all. Here the code is found as the frame's largest square patch of texture, the grid
fitted (edge/devices/qr_grid.py) and then re-placed on the finder and alignment patterns as
the smear would show them (templates drawn through the grid and blurred, whose blur also
gives the smear's direction and length), and the modules solved for on that lattice
(edge/devices/qr_lattice.py). Any text still passes the soft reader's Reed-Solomon check.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.devices import qr_grid
from edge.devices import qr_layout as layout
from edge.devices.qr_deadline import check
from edge.devices.qr_deblur import motion_angle
from edge.devices.qr_lattice import (
    FULL,
    RING,
    Smear,
    line_kernel,
    part,
    ranked_smears,
    solve,
)
from edge.devices.qr_soft import read_soft

Gray = NDArray[np.uint8]
Quad = NDArray[np.float64]
Float = NDArray[np.float32]
Homography = NDArray[np.float64]

SIGMA = 1.0
# The smears the finder match chooses among: lengths (px) and turns from the gradients'
# direction (radians, which they give within about 0.3 on the goal and selection sets).
_LENGTHS = (4.0, 5.0, 6.0, 7.0, 8.0)
_TURNS = (-0.2, -0.1, 0.0, 0.1, 0.2)
_SUB = np.array([(-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25)])


def _finder_pattern() -> Float:
    p = np.zeros((9, 9), np.float32)  # separator light
    p[1:8, 1:8] = 1.0
    p[2:7, 2:7] = 0.0
    p[3:6, 3:6] = 1.0
    return p


def _align_pattern() -> Float:
    p = np.ones((5, 5), np.float32)
    p[1:4, 1:4] = 0.0
    p[2, 2] = 1.0
    return p


_FINDER = _finder_pattern()
_ALIGN = _align_pattern()


def _jacobian(homography: Homography, point: tuple[float, float]) -> NDArray[np.float64]:
    """d(pixel)/d(module) of the homography at a module point."""
    u = np.array([[point, (point[0] + 1, point[1]), (point[0], point[1] + 1)]], np.float64)
    p = cv2.perspectiveTransform(u, homography)[0]
    return np.stack([p[1] - p[0], p[2] - p[0]], axis=1)


# Drawn patterns before the blur, by (pattern, grid, sub-pixel offset, half size): the finder
# refine blurs each finder's drawing by 25 smears, and drawing it is 2/3 of a template's cost.
Drawings = dict[tuple[float, ...], tuple[Float, Float]]


def _template(
    pattern: Float,
    jac: NDArray[np.float64],
    frac: NDArray[np.float64],
    kernel: Float,
    drawings: Drawings | None = None,
) -> tuple[Float, Float, int]:
    """The pattern (centred) as the camera would see it: template, pure-pixel mask, half size."""
    reach = pattern.shape[0] / 2 * float(np.abs(jac).sum(axis=1).max()) + kernel.shape[0] / 2
    half = math.ceil(reach) + 1
    key = (float(id(pattern)), float(half), *frac, *jac.ravel())
    drawn = drawings.get(key) if drawings is not None else None
    if drawn is None:
        drawn = _drawn(pattern, jac, frac, half)
        if drawings is not None:
            drawings[key] = drawn
    value, unknown = drawn
    blurred = cv2.GaussianBlur(cv2.filter2D(value, -1, kernel), (0, 0), SIGMA)
    spread = cv2.GaussianBlur(cv2.filter2D(unknown, -1, kernel), (0, 0), SIGMA)
    mask = (spread < 0.05).astype(np.float32)
    return np.asarray(1.0 - blurred, np.float32), mask, half


def _drawn(
    pattern: Float, jac: NDArray[np.float64], frac: NDArray[np.float64], half: int
) -> tuple[Float, Float]:
    """The pattern drawn through the grid on (2 half + 1)^2 pixels, area-sampled, and the
    share of each pixel that falls outside it."""
    inverse = np.linalg.inv(jac)
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    value = np.zeros(xs.shape, np.float64)
    unknown = np.zeros(xs.shape, np.float64)
    side = pattern.shape[0]
    for dx, dy in _SUB:
        d = np.stack([xs - frac[0] + dx, ys - frac[1] + dy], -1) @ inverse.T + side / 2
        col, row = np.floor(d[..., 0]).astype(int), np.floor(d[..., 1]).astype(int)
        inside = (col >= 0) & (col < side) & (row >= 0) & (row < side)
        value += np.where(inside, pattern[row.clip(0, side - 1), col.clip(0, side - 1)], 0.5)
        unknown += ~inside
    count = len(_SUB)
    return np.asarray(value / count, np.float32), np.asarray(unknown / count, np.float32)


def locate(
    image: Float,
    centre: NDArray[np.float64],
    pattern: Float,
    jac: NDArray[np.float64],
    kernel: Float,
    search: int,
    drawings: Drawings | None = None,
) -> tuple[NDArray[np.float64], float]:
    """Where near `centre` (px) the blurred pattern matches best, and the correlation there."""
    base = np.round(centre).astype(int)
    template, mask, half = _template(pattern, jac, centre - base, kernel, drawings)
    x0, y0 = base[0] - half - search, base[1] - half - search
    x1, y1 = base[0] + half + search + 1, base[1] + half + search + 1
    if x0 < 0 or y0 < 0 or x1 > image.shape[1] or y1 > image.shape[0]:
        return centre, -1.0
    window = np.ascontiguousarray(image[y0:y1, x0:x1])
    scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED, mask=mask)
    scores = np.nan_to_num(scores, nan=-1.0)
    _, best, _, (lx, ly) = cv2.minMaxLoc(scores)
    shift = np.array([lx - search, ly - search], np.float64)
    for axis, (at, size) in enumerate(((lx, scores.shape[1]), (ly, scores.shape[0]))):
        if 0 < at < size - 1:
            line = scores[ly, lx - 1 : lx + 2] if axis == 0 else scores[ly - 1 : ly + 2, lx]
            curve = line[0] - 2 * line[1] + line[2]
            if curve < 0:
                shift[axis] += 0.5 * (line[0] - line[2]) / curve
    return centre + shift, float(best)


def refine(
    image: Float, homography: Homography, version: int, angle: float, deadline: float = math.inf
) -> tuple[Homography, float, float, float]:
    """A better grid, the smear's angle and length, and the finders' mean match; raises
    DeadlinePassedError once `deadline` (time.perf_counter seconds) has passed."""
    n = layout.size(version)
    finders = [(float(x), float(y)) for x, y in qr_grid.finder_centres(n)]
    module_pts = np.array([finders], np.float64)
    predicted = cv2.perspectiveTransform(module_pts, homography)[0]
    jacs = [_jacobian(homography, f) for f in finders]
    module = float(np.sqrt(abs(np.linalg.det(jacs[0]))))
    search = math.ceil(1.5 * module)
    drawings: Drawings = {}
    scores: dict[tuple[int, int], float] = {}

    def matched(at: tuple[int, int]) -> float:
        if at not in scores:
            check(deadline)
            kernel = line_kernel(_LENGTHS[at[0]], angle + _TURNS[at[1]])
            scores[at] = sum(
                locate(image, p, _FINDER, j, kernel, search, drawings)[1]
                for p, j in zip(predicted, jacs, strict=True)
            )
        return scores[at]

    # The best turn at a length, then the best length at that turn, until neither moves:
    # 13-17 of the 25 smears, the same best on the 11 goal and selection frames it sees.
    at, last = (len(_LENGTHS) // 2, len(_TURNS) // 2), (-1, -1)
    while at != last:
        last = at
        at = max(((at[0], t) for t in range(len(_TURNS))), key=matched)
        at = max(((k, at[1]) for k in range(len(_LENGTHS))), key=matched)
    score, angle, length = scores[at], angle + _TURNS[at[1]], _LENGTHS[at[0]]
    kernel = line_kernel(length, angle)
    source = list(finders)
    found = [
        locate(image, p, _FINDER, j, kernel, search, drawings)[0]
        for p, j in zip(predicted, jacs, strict=True)
    ]
    correction = cv2.getAffineTransform(predicted.astype(np.float32), np.array(found, np.float32))
    current = np.vstack([correction, [0, 0, 1]]) @ homography
    for r, c in layout.alignment_centres(version):
        check(deadline)
        point = (c + 0.5, r + 0.5)
        at = cv2.perspectiveTransform(np.array([[point]], np.float64), current)[0, 0]
        spot, match = locate(image, at, _ALIGN, _jacobian(current, point), kernel, search)
        if match > 0.5:
            source.append(point)
            found.append(spot)
    if len(source) >= 4:
        fitted, _ = cv2.findHomography(np.array(source, np.float64), np.array(found, np.float64), 0)
        if fitted is not None:
            current = np.asarray(fitted, np.float64)
    return current, angle, length, score / 3


# A texture patch smaller than this (px, half-size frame) is no code worth the solve.
_MIN_AREA = 900
# Finder match (correlation) below which the grid is not on a code.
_MIN_FINDERS = 0.5
_SHRINK = 2


def textured_quads(gray: Gray) -> list[Quad]:
    """Rough corner quads of the frame's largest squarish patches of texture, at most two.

    A smeared code is still a square of strong gradients on its quiet zone; an opening wider
    than a smeared edge removes the card's or bezel's outline, which would join it.
    """
    small = cv2.resize(gray, None, fx=1 / _SHRINK, fy=1 / _SHRINK, interpolation=cv2.INTER_AREA)
    f = small.astype(np.float32)
    energy = cv2.blur(
        np.abs(cv2.Sobel(f, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(f, cv2.CV_32F, 0, 1)), (5, 5)
    )
    strong = (energy > 0.4 * float(np.percentile(energy, 99.5))).astype(np.uint8)
    patches = cv2.morphologyEx(strong, cv2.MORPH_OPEN, np.ones((11, 11), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(patches)
    found: list[tuple[int, Quad]] = []
    for k in range(1, count):
        area = int(stats[k, cv2.CC_STAT_AREA])
        if area < _MIN_AREA:
            continue
        points = np.column_stack(np.nonzero(labels == k)[::-1]).astype(np.float32)
        rect = cv2.minAreaRect(points)
        w, h = rect[1]
        if min(w, h) <= 0 or max(w, h) / min(w, h) > 1.8 or area / (w * h) < 0.55:
            continue
        hull = cv2.convexHull(points)
        poly = cv2.approxPolyDP(hull, 0.04 * cv2.arcLength(hull, True), True)
        quad = poly.reshape(-1, 2) if len(poly) == 4 else cv2.boxPoints(rect)
        found.append((area, np.asarray(quad, np.float64) * _SHRINK + (_SHRINK - 1) / 2))
    found.sort(key=lambda item: -item[0])
    return [quad for _, quad in found[:2]]


def read_smeared(gray: Gray, quad: Quad, rank_s: float, deadline: float = math.inf) -> str | None:
    """The text of the smeared code roughly inside `quad`, or None. The search for the smear
    stops `rank_s` seconds after it starts; everything raises DeadlinePassedError once
    `deadline` (time.perf_counter seconds) has passed."""
    crop, local = qr_grid.crop_round(gray, quad)
    if crop is None:
        return None
    angle = motion_angle(crop)
    if angle is None:
        return None
    version, corners, _ = qr_grid.fit(qr_grid.smoothed(crop), local, deadline=deadline, fine=False)
    image = crop.astype(np.float32)
    homography = qr_grid.grid_homography(corners, layout.size(version))
    homography, angle, length, match = refine(image, homography, version, angle, deadline)
    if match < _MIN_FINDERS:
        return None
    start = Smear(length, angle, SIGMA)  # the lens blur refine's templates assumed
    image, homography = part(image, homography, layout.size(version) + RING)
    rank_until = min(time.perf_counter() + rank_s, deadline)
    for smear in ranked_smears(image, homography, version, start, rank_until, deadline)[:2]:
        text = read_soft(solve(image, homography, version, smear, FULL, deadline)[0])
        if text is not None:
            return text
    return None
