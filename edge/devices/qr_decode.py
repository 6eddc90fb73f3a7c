"""Find and decode the pass QR code in a camera frame: zxing-cpp, cheap first, retries on evidence.

Chosen by measurement on the real photo set (benchmarks/bench_qr.py): both binarizers on the
grayscale frame read most codes in well under a millisecond. Only when they located a code
they could not read (a checksum error) do we crop to it and retry upscaled and eroded, so a
frame with no code in it, the gate's idle state, costs just the two cheap attempts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import zxingcpp
from numpy.typing import NDArray

log = logging.getLogger(__name__)

Gray = NDArray[np.uint8]

# Passes are long base45 texts, always full (Model 2) QR codes. The QRCode family would also
# admit Micro QR, whose smallest size only detects errors: on the photo set it "decoded" a
# T-shirt's texture as "22130".
_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCodeModel2)
# Plain, not the default HRI: HRI rewrites control characters as "<SOH>" and the like.
_TEXT_MODE = zxingcpp.TextMode.Plain
_LOCAL = zxingcpp.Binarizer.LocalAverage
_GLOBAL = zxingcpp.Binarizer.GlobalHistogram
_BOOL = zxingcpp.Binarizer.BoolCast
# Upscaled retries stop at this many pixels on the long side, so a hard code in a large
# frame costs tens of milliseconds, not hundreds.
_MAX_SIDE = 1280
_ROI_MARGIN = 0.3
_WIENER_NSR = 0.02


class ImageReadError(Exception):
    """An image file could not be read or is not an image."""


@dataclass(frozen=True)
class Stage:
    """One decode attempt: how to prepare the grayscale image and which binarizer to use."""

    name: str
    prepare: Callable[[Gray], Gray]
    binarizer: zxingcpp.Binarizer


def _as_is(gray: Gray) -> Gray:
    return gray


def _scaled(gray: Gray, factor: float) -> Gray:
    factor = min(factor, _MAX_SIDE / max(gray.shape))
    if factor <= 1.0:
        return gray
    return np.asarray(
        cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC), np.uint8
    )


def _eroded(gray: Gray, size: int) -> Gray:
    # Erosion grows the dark modules: ink on cloth and glare leave them thinner than the
    # light ones, which throws off the sampling grid.
    return np.asarray(cv2.erode(gray, np.ones((size, size), np.uint8)), np.uint8)


def _thresholded(gray: Gray, block: int, gaussian: bool = False) -> Gray:
    # zxing's LocalAverage judges each pixel by 8x8 blocks; a window of a few modules follows
    # low contrast, glare gradients and moire better. The binarizer then only casts 0 / 255.
    method = cv2.ADAPTIVE_THRESH_GAUSSIAN_C if gaussian else cv2.ADAPTIVE_THRESH_MEAN_C
    return np.asarray(
        cv2.adaptiveThreshold(gray, 255, method, cv2.THRESH_BINARY, block, 2), np.uint8
    )


def _deblurred(gray: Gray, length: int) -> Gray:
    """Undo a motion blur of `length` px along the direction the gradients say it ran."""
    pixels = gray.astype(np.float32)
    gx = cv2.Sobel(pixels, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(pixels, cv2.CV_32F, 0, 1)
    xx, xy, yy = float(np.mean(gx * gx)), float(np.mean(gx * gy)), float(np.mean(gy * gy))
    # A code's edges are balanced along its two axes, so the direction that lost gradient
    # energy is the direction of motion: across the structure tensor's main axis.
    angle = 0.5 * math.atan2(2 * xy, xx - yy) + math.pi / 2
    return _wiener(pixels, _line_kernel(length, angle))


def _line_kernel(length: int, angle: float) -> NDArray[np.float32]:
    half = length / 2
    size = 2 * math.ceil(half) + 1
    kernel = np.zeros((size, size), np.float32)
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    mid = size // 2
    cv2.line(kernel, (round(mid - dx), round(mid - dy)), (round(mid + dx), round(mid + dy)), 1.0)
    return np.asarray(kernel / kernel.sum(), np.float32)


def _wiener(pixels: NDArray[np.float32], kernel: NDArray[np.float32]) -> Gray:
    height, width = pixels.shape
    padded = np.zeros((height, width), np.float32)
    padded[: kernel.shape[0], : kernel.shape[1]] = kernel
    padded = np.roll(padded, (-(kernel.shape[0] // 2), -(kernel.shape[1] // 2)), (0, 1))
    blur = np.fft.rfft2(padded)
    # The constant stands for the noise-to-signal ratio: it stops the zeros of a line
    # kernel's spectrum from amplifying sensor noise and JPEG blocks without bound.
    restored = np.fft.irfft2(
        np.fft.rfft2(pixels) * np.conj(blur) / (np.abs(blur) ** 2 + _WIENER_NSR), s=(height, width)
    )
    return np.asarray(np.clip(restored, 0, 255), np.uint8)


CHEAP_STAGES: tuple[Stage, ...] = (
    Stage("local", _as_is, _LOCAL),
    Stage("global", _as_is, _GLOBAL),
)
# Run on the whole frame only when the cheap stages located nothing: it reads low-contrast,
# glared and moire'd screens the cheap ones miss, and its detections are evidence too.
BLIND_STAGES: tuple[Stage, ...] = (Stage("threshold21", lambda g: _thresholded(g, 21), _BOOL),)
RETRY_STAGES: tuple[Stage, ...] = (
    Stage("up2-erode3-local", lambda g: _eroded(_scaled(g, 2.0), 3), _LOCAL),
    Stage("erode2-up1.5-local", lambda g: _scaled(_eroded(g, 2), 1.5), _LOCAL),
    Stage("up1.5-local", lambda g: _scaled(g, 1.5), _LOCAL),
    Stage("gauss-threshold31", lambda g: _thresholded(g, 31, gaussian=True), _BOOL),
    Stage("deblur5-local", lambda g: _deblurred(g, 5), _LOCAL),
    Stage("deblur7-local", lambda g: _deblurred(g, 7), _LOCAL),
    Stage("deblur3-local", lambda g: _deblurred(g, 3), _LOCAL),
)


def decode_frame(image: object) -> str | None:
    """Return the text of the QR code in a BGR, BGRA or grayscale uint8 frame, or None."""
    return decode_with_stage(image)[0]


def decode_with_stage(image: object) -> tuple[str | None, str | None]:
    """Return the decoded text and the name of the stage that found it (None, None if none)."""
    try:
        gray = _to_gray(image)
        return (None, None) if gray is None else _decode_gray(gray)
    except (ValueError, RuntimeError, cv2.error) as exc:
        # A frame must never take the reader down; garbage in is simply "no code".
        log.debug("QR decode failed: %s", exc)
        return None, None


def decode_file(path: str | Path) -> tuple[str | None, float]:
    """Decode an image file; return the text and the decode time in ms (file loading excluded)."""
    image = read_image(path)
    start = time.perf_counter()
    text = decode_frame(image)
    return text, (time.perf_counter() - start) * 1000.0


def read_image(path: str | Path) -> NDArray[np.uint8]:
    """Load an image file as a BGR uint8 array, raising ImageReadError when it cannot."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: {exc.strerror or exc}") from exc
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error as exc:
        raise ImageReadError(f"{path}: {exc}") from exc
    if image is None:
        raise ImageReadError(f"{path}: not an image OpenCV can read")
    return np.asarray(image, np.uint8)


def _to_gray(image: object) -> Gray | None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        return None
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        return None
    code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return np.asarray(cv2.cvtColor(image, code), np.uint8)


def _decode_gray(gray: Gray) -> tuple[str | None, str | None]:
    evidence: list[zxingcpp.Barcode] = []
    for stage in CHEAP_STAGES:
        text, found = _attempt(gray, stage)
        if text is not None:
            return text, stage.name
        evidence.extend(found)
    for stage in () if evidence else BLIND_STAGES:
        text, found = _attempt(gray, stage)
        if text is not None:
            return text, stage.name
        evidence.extend(found)
    if not evidence:
        return None, None
    roi = _crop(gray, evidence)
    for stage in RETRY_STAGES:
        text, _ = _attempt(roi, stage)
        if text is not None:
            return text, stage.name
    return None, None


def _attempt(gray: Gray, stage: Stage) -> tuple[str | None, list[zxingcpp.Barcode]]:
    found = _read(stage.prepare(gray), stage.binarizer)
    return _first_text(found), found


def _read(gray: Gray, binarizer: zxingcpp.Binarizer) -> list[zxingcpp.Barcode]:
    # return_errors: a code that was located but failed its checksum is the evidence that
    # makes the costlier retries worth running.
    return list(
        zxingcpp.read_barcodes(
            gray, formats=_FORMATS, text_mode=_TEXT_MODE, binarizer=binarizer, return_errors=True
        )
    )


def _first_text(found: Sequence[zxingcpp.Barcode]) -> str | None:
    for barcode in found:
        if barcode.valid and barcode.error is None:
            return str(barcode.text)
    return None


def _crop(gray: Gray, found: Sequence[zxingcpp.Barcode]) -> Gray:
    corners = [
        (point.x, point.y)
        for barcode in found
        for point in (
            barcode.position.top_left,
            barcode.position.top_right,
            barcode.position.bottom_right,
            barcode.position.bottom_left,
        )
    ]
    xs = [x for x, _ in corners]
    ys = [y for _, y in corners]
    margin = int(_ROI_MARGIN * max(max(xs) - min(xs), max(ys) - min(ys))) + 8
    height, width = gray.shape
    x0, x1 = max(0, min(xs) - margin), min(width, max(xs) + margin)
    y0, y1 = max(0, min(ys) - margin), min(height, max(ys) + margin)
    # A version-1 code is 21 modules wide; a narrower box cannot be the whole code.
    if x1 - x0 < 21 or y1 - y0 < 21:
        return gray
    return np.ascontiguousarray(gray[y0:y1, x0:x1])
