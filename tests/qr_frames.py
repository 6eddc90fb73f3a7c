"""Synthetic hard camera frames of real pass QR codes: phone screens and laminated cards.

A deterministic generator (seed and index fix every frame) for the decoder's goal set
(benchmarks/bench_qr_synthetic.py) and its test (tests/integration/test_qr_synthetic.py).
Each frame is one signed pass, rendered as the project renders passes (segno, level M), on a
phone screen or a printed card, seen by a cheap 640x480 gate camera:

- screen (even indices): the code on a bright page inside a black bezel. The screen's pixel
  grid (dark gaps between pixels) is warped to the camera without anti-aliasing, so where its
  pitch nears the camera's it beats into moire; a reflected ceiling light is a round glare
  blob over a veil that lifts the dark modules.
- paper (odd indices): a card with paper grain; the laminate's reflection of a strip light is
  a long glare streak.
- live codes (every fourth frame, a screen, unless `live=False`): the phone's live code of a
  device-bound pass (protocol/epass_bound.py), "MJ2:" + base45, 283-311 characters in
  version 9-10 at level M, as the phone's encoder draws it (alphanumeric, no boosted level).
  A live code only exists on a screen: it changes every slot. Its frame draws the same
  conditions as the static pass it replaces; the larger code has smaller modules.
- both: perspective tilt up to 35 degrees about a random axis, any in-plane rotation, code
  150-330 px across, contrast 0.45-1, uneven light, Gaussian blur (sigma 0-1.4 px), motion
  blur (0-7 px, half the frames), sensor noise (sigma 2-10), JPEG quality 45-90.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import segno
from numpy.typing import NDArray

from tests.qr_passes import live_text, pass_text

WIDTH, HEIGHT = 640, 480
GOAL_SEED = 20261201
HELD_OUT_SEED = 777
_FOCAL = 700.0  # px: a ~50 degree horizontal field of view at 640 px
_QUIET = 4  # modules of white border, as the project prints codes

Image = NDArray[np.uint8]
Plane = NDArray[np.float32]


@dataclass(frozen=True)
class Conditions:
    """What one frame went through; printed by the benchmark for the frames it misses."""

    surface: str
    live: bool
    code_px: float
    rotation: float
    tilt: float
    contrast: float
    glare: float
    blur: float
    motion: int
    noise: float
    jpeg: int
    screen_px_per_module: int

    def describe(self) -> str:
        """One line, for a benchmark's list of misses."""
        return (
            f"{'live ' if self.live else ''}{self.surface} {self.code_px:.0f}px "
            f"rot {self.rotation:.0f} tilt {self.tilt:.0f} "
            f"contrast {self.contrast:.2f} glare {self.glare:.2f} blur {self.blur:.1f} "
            f"motion {self.motion} noise {self.noise:.1f} jpeg {self.jpeg}"
            + (f" screen {self.screen_px_per_module}px/module" if self.surface == "screen" else "")
        )


@dataclass(frozen=True)
class Frame:
    """A 640x480 BGR camera frame and the exact pass text its code holds."""

    index: int
    text: str
    image: Image
    conditions: Conditions


def frames(seed: int, count: int, finders_clear: bool = True, live: bool = True) -> list[Frame]:
    """The first `count` frames of the set named by `seed`."""
    return [frame(seed, index, finders_clear, live) for index in range(count)]


def frame(seed: int, index: int, finders_clear: bool = True, live: bool = True) -> Frame:
    """Frame `index` of the set `seed`; any frame can be made on its own, in any order.

    With `finders_clear` the glare is moved (up to 20 draws) until it leaves the three finder
    patterns darker than the surface: no QR reader can locate a code without them, so a frame
    that loses one measures nothing but the glare. Its strength is never reduced.
    `live=False` gives the set as it was before live codes joined it.
    """
    rng = np.random.default_rng([seed, index])
    text = pass_text(rng)  # drawn for live frames too, so both keep the same conditions
    is_live = live and index % 4 == 0
    conditions = _conditions(rng, "screen" if index % 2 == 0 else "paper", is_live)
    if is_live:
        text = live_text(np.random.default_rng([seed, index, 1]))
        code = segno.make(text, error="m", mode="alphanumeric", boost_error=False, micro=False)
    else:
        code = segno.make(text, error="m", micro=False)
    modules = np.array(list(code.matrix_iter(scale=1, border=_QUIET)), np.uint8)
    if conditions.surface == "screen":
        surface, code_box = _screen(rng, modules, conditions.screen_px_per_module)
    else:
        surface, code_box = _card(rng, modules)
    image = _photograph(rng, surface, code_box, len(modules), conditions, finders_clear)
    return Frame(index, text, image, conditions)


def _conditions(rng: np.random.Generator, surface: str, live: bool) -> Conditions:
    return Conditions(
        surface=surface,
        live=live,
        code_px=float(rng.uniform(150, 330)),
        rotation=float(rng.uniform(0, 360)),
        tilt=float(rng.uniform(0, 35)),
        contrast=float(rng.uniform(0.45, 1.0)),
        glare=float(rng.uniform(0.0, 0.8)),
        blur=float(rng.uniform(0.0, 1.4)),
        motion=int(rng.integers(1, 8)) if rng.random() < 0.5 else 0,
        noise=float(rng.uniform(2.0, 10.0)),
        jpeg=int(rng.integers(45, 91)),
        screen_px_per_module=int(rng.integers(4, 10)),
    )


def _screen(
    rng: np.random.Generator, modules: Image, px_per_module: int
) -> tuple[Plane, tuple[int, int, int]]:
    """A phone screen: page in screen pixels, each pixel 4x4 with a darker gap; plus a bezel."""
    side = len(modules)
    page_w = side + 2 * int(rng.integers(1, 4))
    page_h = int(page_w * rng.uniform(1.5, 1.9))
    page = np.ones((page_h, page_w), np.float32)
    top = int(rng.integers(side // 4, max(side // 4 + 1, page_h - side - side // 4)))
    left = (page_w - side) // 2
    page[top : top + side, left : left + side] = 1.0 - modules
    page[max(0, top - 6) : max(0, top - 3), 2:-2] = rng.uniform(0.2, 0.7)  # the kind's colour band
    _text_lines(rng, page, top + side + 2)
    pixels = np.kron(page, np.ones((px_per_module, px_per_module), np.float32))
    cell = np.ones((4, 4), np.float32)
    gap = rng.uniform(0.55, 0.85)
    cell[3, :] *= gap
    cell[:, 3] *= gap
    screen = np.kron(pixels, cell)
    bezel = int(screen.shape[1] * 0.06)
    plane = np.pad(screen, bezel, constant_values=0.03)
    scale = 4 * px_per_module
    return plane, (bezel + top * scale, bezel + left * scale, side * scale)


def _text_lines(rng: np.random.Generator, page: Plane, top: int) -> None:
    """Dark bars below the code where the page prints name, unit and validity."""
    for row in range(top, page.shape[0] - 3, 4):
        width = int(rng.integers(page.shape[1] // 3, page.shape[1] - 4))
        page[row : row + 2, 2 : 2 + width] = rng.uniform(0.1, 0.5)


def _card(rng: np.random.Generator, modules: Image) -> tuple[Plane, tuple[int, int, int]]:
    """A printed card at 8 px per module with paper grain and a printed line under the code."""
    scale = 8
    side = len(modules)
    card_w, card_h = side + int(rng.integers(4, 16)), side + int(rng.integers(10, 30))
    card = np.ones((card_h, card_w), np.float32)
    top, left = int(rng.integers(2, card_h - side - 6)), (card_w - side) // 2
    card[top : top + side, left : left + side] = 1.0 - modules
    _text_lines(rng, card, top + side + 1)
    plane = np.kron(card, np.ones((scale, scale), np.float32))
    grain = rng.normal(0.0, 0.03, plane.shape).astype(np.float32)
    plane = plane * 0.92 + 0.04 + cv2.GaussianBlur(grain, (0, 0), 1.5)
    return plane.astype(np.float32), (top * scale, left * scale, side * scale)


def _photograph(
    rng: np.random.Generator,
    plane: Plane,
    code_box: tuple[int, int, int],
    side_modules: int,
    c: Conditions,
    finders_clear: bool,
) -> Image:
    """Warp the surface into a scene, then light, glare, blur, noise and compress it."""
    homography = _homography(rng, code_box, side_modules, c)
    if c.surface == "paper":
        # Printed edges are smooth: anti-alias the 8 px/module card before shrinking it.
        shrink = code_box[2] / c.code_px
        plane = np.asarray(cv2.GaussianBlur(plane, (0, 0), max(0.1, 0.45 * shrink)), np.float32)
    flat, light, dark = _levels(rng, plane, c.contrast)
    finders = _finder_points(homography, code_box, side_modules)
    glare = _glare(rng, c)
    for _ in range(20 if finders_clear else 0):
        if np.all(dark + glare[finders[:, 1], finders[:, 0]] < light - 0.05):
            break
        glare = _glare(rng, c)
    scene = _background(rng)
    warped = cv2.warpPerspective(
        flat, homography, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderValue=-1.0
    )
    on_surface = warped >= 0
    # The glare is a reflection in the screen or the laminate, so only the surface shows it.
    image = np.where(on_surface, warped + glare, scene) * _light_gradient(rng)
    image = _blur(rng, np.clip(image, 0.0, 1.0).astype(np.float32), c)
    return _sensor(rng, image, c)


def _homography(
    rng: np.random.Generator, code_box: tuple[int, int, int], side_modules: int, c: Conditions
) -> NDArray[np.float64]:
    """Tilt the surface about a random in-plane axis, rotate, scale the code and place it."""
    top, left, side = code_box
    inner = side * (side_modules - 2 * _QUIET) / side_modules
    src = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float64)
    placed = src + np.array([left, top], np.float64)
    centre = np.array([left + side / 2, top + side / 2])
    unit = (placed - centre) / inner  # the code's data area spans one unit
    axis = rng.uniform(0, math.pi)
    dst = _project(unit, c.code_px, c.tilt, axis, math.radians(c.rotation))
    # Keep the whole code with half its quiet zone inside the frame.
    shift = _placement(rng, dst * (1 - _QUIET / side_modules))
    homography = cv2.getPerspectiveTransform(
        placed.astype(np.float32), (dst + shift).astype(np.float32)
    )
    return np.asarray(homography, np.float64)


def _project(
    points: NDArray[np.float64], size: float, tilt: float, axis: float, rotation: float
) -> NDArray[np.float64]:
    t = math.radians(tilt)
    ca, sa = math.cos(axis), math.sin(axis)
    # Rotation by `t` about the unit axis (ca, sa, 0) in the surface plane (Rodrigues).
    k = np.array([[0, 0, sa], [0, 0, -ca], [-sa, ca, 0]])
    rot = np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * (k @ k)
    xyz = np.c_[points * size, np.zeros(len(points))] @ rot.T
    z = _FOCAL + xyz[:, 2]
    xy = xyz[:, :2] * (_FOCAL / z)[:, None]
    cr, sr = math.cos(rotation), math.sin(rotation)
    return np.asarray(xy @ np.array([[cr, sr], [-sr, cr]]), np.float64)


def _placement(rng: np.random.Generator, corners: NDArray[np.float64]) -> NDArray[np.float64]:
    low, high = -corners.min(axis=0) + 4, np.array([WIDTH, HEIGHT]) - corners.max(axis=0) - 4
    return np.array([rng.uniform(lo, max(lo, hi)) for lo, hi in zip(low, high, strict=True)])


def _finder_points(
    homography: NDArray[np.float64], code_box: tuple[int, int, int], side_modules: int
) -> NDArray[np.intp]:
    """Frame pixels (x, y) on the three finder patterns: centres and outer dark rings."""
    top, left, side = code_box
    near, far = _QUIET + 3.5, side_modules - _QUIET - 3.5
    offsets = [(0, 0), (-3, -3), (3, -3), (3, 3), (-3, 3)]
    modules = [
        (cx + dx, cy + dy)
        for cx, cy in ((near, near), (far, near), (near, far))
        for dx, dy in offsets
    ]
    unit = side / side_modules
    plane = np.array([[(left + x * unit, top + y * unit) for x, y in modules]], np.float32)
    points = cv2.perspectiveTransform(plane, homography)[0]
    return np.asarray(np.clip(np.rint(points), 0, [WIDTH - 1, HEIGHT - 1]), np.intp)


def _levels(rng: np.random.Generator, plane: Plane, contrast: float) -> tuple[Plane, float, float]:
    """Map 0..1 reflectance to the camera's levels: light at 0.6-0.95, dark by contrast."""
    light = float(rng.uniform(0.6, 0.95))
    dark = light * (1.0 - contrast)
    return (dark + (light - dark) * plane).astype(np.float32), light, dark


def _background(rng: np.random.Generator) -> Plane:
    """A cluttered, out-of-focus scene: blurred noise at mid levels."""
    noise = rng.random((HEIGHT // 8, WIDTH // 8)).astype(np.float32)
    coarse = cv2.resize(noise, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    return (rng.uniform(0.2, 0.5) + 0.3 * cv2.GaussianBlur(coarse, (0, 0), 6)).astype(np.float32)


def _light_gradient(rng: np.random.Generator) -> Plane:
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    ramp = (xs - WIDTH / 2) * math.cos(angle) + (ys - HEIGHT / 2) * math.sin(angle)
    return np.asarray(1.0 + rng.uniform(0.0, 0.35) * ramp / (WIDTH / 2), np.float32)


def _glare(rng: np.random.Generator, c: Conditions) -> Plane:
    """A screen's reflected lamp (blob over a veil) or a laminate's strip light (streak)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    cx, cy = rng.uniform(WIDTH * 0.2, WIDTH * 0.8), rng.uniform(HEIGHT * 0.2, HEIGHT * 0.8)
    if c.surface == "screen":
        radius = rng.uniform(20, 70)
        spot = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2))
        return np.asarray(c.glare * (0.15 + spot), np.float32)
    angle = rng.uniform(0, math.pi)
    across = (xs - cx) * -math.sin(angle) + (ys - cy) * math.cos(angle)
    width = rng.uniform(8, 30)
    return np.asarray(c.glare * np.exp(-(across**2) / (2 * width**2)), np.float32)


def _blur(rng: np.random.Generator, image: Plane, c: Conditions) -> Plane:
    # A cheap lens is never perfectly sharp (0.5 px); Gaussian blurs compose in quadrature.
    blurred = cv2.GaussianBlur(image, (0, 0), math.hypot(0.5, c.blur))
    if c.motion:
        blurred = cv2.filter2D(blurred, -1, _motion_kernel(c.motion, rng.uniform(0, math.pi)))
    return np.asarray(blurred, np.float32)


def _motion_kernel(length: int, angle: float) -> Plane:
    """A line `length` px long through the centre of the kernel, normalised to sum 1."""
    half = length / 2
    size = 2 * math.ceil(half) + 1
    kernel = np.zeros((size, size), np.float32)
    mid = size // 2
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    start = (round(mid - dx), round(mid - dy))
    end = (round(mid + dx), round(mid + dy))
    cv2.line(kernel, start, end, 1.0, 1)
    return np.asarray(kernel / kernel.sum(), np.float32)


def _sensor(rng: np.random.Generator, image: Plane, c: Conditions) -> Image:
    """Colour cast, sensor noise, 8 bits and the camera's JPEG."""
    tint = np.array([1.05, 1.0, 0.9] if c.surface == "paper" else [1.0, 0.97, 0.93])
    bgr = image[:, :, None] * tint[None, None, :] * 255.0
    bgr = bgr + rng.normal(0.0, c.noise, bgr.shape)
    pixels = np.clip(bgr, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, c.jpeg])
    assert ok
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), np.uint8)
