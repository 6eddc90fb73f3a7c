"""Undo a camera's motion blur on the part of a frame that holds a code: the decoder's last look.

A hand that moves the phone smears every module along one line. The gradients across that
line survive and those along it fade, so the structure tensor of the most textured region
names the direction, and its coherence says whether there is a smear at all. On
benchmarks/bench_qr_synthetic.py's frames (measured at half size) 6-7 px of motion gives
0.22-0.44 and 5 px 0.09-0.29, a sharp or defocused code 0.01-0.22 (mostly under 0.15), an
idle camera's blurred scene about 0.01; below MIN_COHERENCE nothing more is spent. A Wiener
filter for a line of that direction then restores the region. A fixed bank of three
(length, noise) guesses stands in for estimating the length, which the spectrum's cepstrum
gave no better than +-2 px on these frames (JPEG's 8 px blocks leave their own peak).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray

Gray = NDArray[np.uint8]
Float = NDArray[np.float32]

ROI_SIDE = 384  # holds the synthetic set's largest code (330 px) with some quiet zone
# A version-1 code at 3 px a module is 63 px across; in less there is nothing to restore.
MIN_SIDE = 64
MIN_COHERENCE = 0.15
# (line length px, noise-to-signal ratio, upscale before decoding), chosen by the frames each
# one read on the goal set and a selection set (seed 1); see docs/performance.md.
BANK: tuple[tuple[int, float, float], ...] = ((6, 0.005, 1.5), (5, 0.02, 2.0), (6, 0.02, 2.0))
_SEARCH_SHRINK = 4


class Restored(NamedTuple):
    """One guess's restored region, the upscale to decode it at, and where the region is."""

    name: str
    image: Gray
    scale: float
    origin: tuple[int, int]  # (x, y) of the region's top left in the frame (0, 0 for a roi)


def deblurred(gray: Gray, roi: Gray | None = None) -> Iterator[Restored]:
    """Yield a restored copy of `roi` (else the frame's most textured square) per guess in
    BANK; nothing when the region shows no smear."""
    if min(gray.shape) < MIN_SIDE or (roi is not None and min(roi.shape) < MIN_SIDE):
        return
    origin = (0, 0) if roi is not None else textured_origin(gray, ROI_SIDE)
    side = min(ROI_SIDE, *gray.shape)
    x0, y0 = origin
    region = roi if roi is not None else np.ascontiguousarray(gray[y0 : y0 + side, x0 : x0 + side])
    angle = motion_angle(region)
    if angle is None:
        return
    spectrum = _dft(region.astype(np.float32) / 255.0)
    for length, nsr, scale in BANK:
        restored = _wiener(spectrum, line_kernel(length, angle), nsr, region.shape)
        yield Restored(f"deblur{length}-{nsr:g}", restored, scale, origin)


def textured_square(gray: Gray, side: int) -> Gray:
    """The side x side square (clipped to the frame) with the most gradient energy."""
    side = min(side, *gray.shape)
    x0, y0 = textured_origin(gray, side)
    return np.ascontiguousarray(gray[y0 : y0 + side, x0 : x0 + side])


def textured_origin(gray: Gray, side: int) -> tuple[int, int]:
    """The top left (x, y) of textured_square(gray, side)."""
    height, width = gray.shape
    side = min(side, height, width)
    small = cv2.resize(
        gray, None, fx=1 / _SEARCH_SHRINK, fy=1 / _SEARCH_SHRINK, interpolation=cv2.INTER_AREA
    )
    energy = np.abs(cv2.Sobel(small, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(small, cv2.CV_32F, 0, 1))
    window = max(1, side // (2 * _SEARCH_SHRINK))
    cy, cx = np.unravel_index(int(np.argmax(cv2.blur(energy, (window, window)))), energy.shape)
    y0 = min(max(0, int(cy) * _SEARCH_SHRINK - side // 2), height - side)
    x0 = min(max(0, int(cx) * _SEARCH_SHRINK - side // 2), width - side)
    return x0, y0


def motion_angle(region: Gray) -> float | None:
    """The smear's direction in radians (0..pi, image axes), or None below MIN_COHERENCE."""
    # At half size a 5-7 px smear is still 2-4 px long, and the tensor costs a quarter.
    half = cv2.pyrDown(region)
    gx = cv2.Sobel(half, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(half, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = (
        float(cv2.mean(cv2.multiply(a, b))[0]) for a, b in ((gx, gx), (gy, gy), (gx, gy))
    )
    total = jxx + jyy
    if total <= 0 or math.hypot(jxx - jyy, 2 * jxy) / total < MIN_COHERENCE:
        return None
    # The tensor's main axis is the strongest gradient, across the smear.
    return (0.5 * math.atan2(2 * jxy, jxx - jyy) + math.pi / 2) % math.pi


def line_kernel(length: int, angle: float) -> Float:
    """A centred line `length` px long at `angle`, summing to 1: a straight, even motion."""
    half = length / 2
    size = 2 * math.ceil(half) + 1
    kernel = np.zeros((size, size), np.float32)
    mid = size // 2
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    cv2.line(kernel, (round(mid - dx), round(mid - dy)), (round(mid + dx), round(mid + dy)), 1.0)
    return np.asarray(kernel / kernel.sum(), np.float32)


def _dft(image: Float) -> Float:
    return np.asarray(cv2.dft(image, flags=cv2.DFT_COMPLEX_OUTPUT), np.float32)


def _wiener(spectrum: Float, kernel: Float, nsr: float, shape: tuple[int, ...]) -> Gray:
    """Divide the kernel out of the image's spectrum, damped where the kernel has no power."""
    padded = np.zeros(shape, np.float32)
    size = kernel.shape[0]
    padded[:size, :size] = kernel
    padded = np.roll(padded, (-(size // 2), -(size // 2)), (0, 1))  # centre at the origin
    k = _dft(padded)
    kr, ki = k[..., 0], k[..., 1]
    gr, gi = spectrum[..., 0], spectrum[..., 1]
    denominator = kr * kr + ki * ki + nsr
    # G * conj(K) / (|K|^2 + nsr), in real and imaginary parts
    out = np.stack([(gr * kr + gi * ki) / denominator, (gi * kr - gr * ki) / denominator], -1)
    restored = cv2.idft(out, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)
    return np.asarray(np.clip(restored * 255.0, 0, 255), np.uint8)
