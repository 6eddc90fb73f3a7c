"""Find and decode the pass QR code in a camera frame: zxing-cpp, cheap first, retries on evidence.

Chosen by measurement on the real photo set (benchmarks/bench_qr.py) and on synthetic hard
camera frames (benchmarks/bench_qr_synthetic.py): both binarizers on the grayscale frame read
most codes in well under a millisecond. When they read nothing, two blind stages look again
at the whole frame (an adaptive threshold, an upscale); only when some stage located a code it
could not read (a checksum error) do we crop to it and retry upscaled, eroded and thresholded.
Then zxing's last look undoes a motion blur (edge/devices/qr_deblur.py) on the located code or
the most textured square, only when its gradients show a smear. The very last, soft look reads
a located code itself: it fits the module grid (edge/devices/qr_grid.py) and decodes with the
unsure codewords as Reed-Solomon erasures (edge/devices/qr_soft.py), which repairs twice what
zxing's hard decisions can; on a smeared frame it then solves for a code's modules on its
grid with the smear modelled (edge/devices/qr_blurfit.py), locating it by its texture when
nothing else did. A frame with no code in it, the gate's idle state, costs the two
cheap and two blind attempts, the smear test and one zxing call on a Gaussian threshold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import zxingcpp
from numpy.typing import NDArray

from edge.devices.qr_blurfit import read_smeared, textured_quads
from edge.devices.qr_deadline import DeadlinePassedError
from edge.devices.qr_deblur import ROI_SIDE, deblurred
from edge.devices.qr_grid import Quad, read_located

log = logging.getLogger(__name__)

Gray = NDArray[np.uint8]
Corner = tuple[int, int]

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
_MAX_SOFT = 2
# The soft last look starts no new code after this long (it takes 20-200 ms a code).
SOFT_BUDGET_MS = 250.0
# The soft and lattice looks together give up, with no text, this long after they start:
# a decode that holds the camera's thread for a second delays the next, sharper frame.
SOFT_DEADLINE_MS = SOFT_BUDGET_MS + 125.0
# The lattice look ranks smears for at most this long a code.
LATTICE_MS = 200.0
_DETECTOR = cv2.QRCodeDetector()


class ImageReadError(Exception):
    """An image file could not be read or is not an image."""


@dataclass(frozen=True)
class Stage:
    """One decode attempt: how to prepare the grayscale image and which binarizer to use."""

    name: str
    prepare: Callable[[Gray], Gray]
    binarizer: zxingcpp.Binarizer
    # zxing's own second looks: an inverted copy (light-on-dark codes) and downscaled copies.
    # The upscaled and thresholded stages gained nothing from either, and paid for both on
    # every frame they missed.
    second_looks: bool = True


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


CHEAP_STAGES: tuple[Stage, ...] = (
    Stage("local", _as_is, _LOCAL),
    Stage("global", _as_is, _GLOBAL),
)
# Run on the whole frame whenever the cheap stages read nothing. Measured on synthetic camera
# frames (benchmarks/bench_qr_synthetic.py): a threshold over a window of a few modules reads
# low-contrast, glared and moire'd screens, and upscaling reads small blurred codes. Their
# detections count as evidence for the retries.
BLIND_STAGES: tuple[Stage, ...] = (
    Stage("threshold21", lambda g: _thresholded(g, 21), _BOOL, second_looks=False),
    Stage("up1.5-local", lambda g: _scaled(g, 1.5), _LOCAL, second_looks=False),
)
RETRY_STAGES: tuple[Stage, ...] = (
    Stage("up2-erode3-local", lambda g: _eroded(_scaled(g, 2.0), 3), _LOCAL),
    Stage("erode2-up1.5-local", lambda g: _scaled(_eroded(g, 2), 1.5), _LOCAL),
    Stage("gauss-threshold31", lambda g: _thresholded(g, 31, gaussian=True), _BOOL, False),
)


OnDecodeError = Callable[[Exception], None]


SoftDue = bool | Callable[[], bool]


def decode_frame(
    image: object,
    on_error: OnDecodeError | None = None,
    *,
    blind: bool = True,
    soft: SoftDue = True,
) -> str | None:
    """Return the text of the QR code in a BGR, BGRA or grayscale uint8 frame, or None."""
    return decode_with_stage(image, on_error, blind=blind, soft=soft)[0]


def decode_with_stage(
    image: object,
    on_error: OnDecodeError | None = None,
    *,
    blind: bool = True,
    soft: SoftDue = True,
) -> tuple[str | None, str | None]:
    """Return the decoded text and the name of the stage that found it (None, None if none).

    `blind=False` skips the whole-frame second looks: a camera at 25 fps with nobody in front
    runs them only a few times a second (CameraReader's blind_fps), not on every frame.
    `soft=False` skips the soft last look (20-375 ms); a callable is asked only when a frame
    gets that far, so a camera's budget (soft_fps) is spent on frames that need it.
    A frame the decoder fails on (OpenCV or zxing raised) is no code too, so it never takes
    the reader down; on_error hears of it, for the caller to count.
    """
    try:
        gray = _to_gray(image)
        return (None, None) if gray is None else _decode_gray(gray, blind, soft, on_error)
    except (ValueError, RuntimeError, cv2.error) as exc:
        if on_error is None:
            log.warning("QR decode failed: %s", exc)
        else:
            on_error(exc)
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


def _decode_gray(
    gray: Gray, blind: bool = True, soft: SoftDue = True, on_error: OnDecodeError | None = None
) -> tuple[str | None, str | None]:
    evidence: list[Corner] = []
    for stage in CHEAP_STAGES:
        text = _attempt(gray, stage, evidence)
        if text is not None:
            return text, stage.name
    for stage in BLIND_STAGES if blind or evidence else ():
        text = _attempt(gray, stage, evidence)
        if text is not None:
            return text, stage.name
    if not evidence and not blind:
        return None, None
    located = [(gray, quad) for quad in _quads(evidence)]
    roi: Gray | None = None
    origin: Corner = (0, 0)
    if evidence:
        roi, origin = _crop(gray, evidence)
        for stage in RETRY_STAGES:
            text = _attempt(roi, stage, [])
            if text is not None:
                return text, stage.name
    smeared: list[bool] = []
    text, name = _deblur_attempts(gray, roi, origin, located, smeared)
    if text is not None or not (soft() if callable(soft) else soft):
        return text, name
    try:
        return _soft_attempts(gray, located, bool(smeared))
    except DeadlinePassedError:
        return None, None
    except Exception as exc:  # an optional last look: a numeric surprise is no code, never a fault
        if on_error is None:
            log.warning("QR soft look failed: %s", exc)
        else:
            on_error(exc)
        return None, None


def _deblur_attempts(
    gray: Gray,
    roi: Gray | None,
    origin: Corner,
    located: list[tuple[Gray, Quad]],
    smeared: list[bool],
) -> tuple[str | None, str | None]:
    """The last look with zxing: undo a motion blur, on the located code or else the most
    textured part. Codes it locates but cannot read join `located`, in the restored region's
    pixels and in the frame's; `smeared` hears whether the region showed a smear at all."""
    if roi is not None and max(roi.shape) > 2 * ROI_SIDE:
        roi, origin = None, (0, 0)
    for restored in deblurred(gray, roi):
        smeared[:] = [True]
        found = _read(_scaled(restored.image, restored.scale), _LOCAL, second_looks=False)
        text = _first_text(found)
        if text is not None:
            return text, restored.name
        scale = restored.image.shape[0] / _scaled(restored.image, restored.scale).shape[0]
        shift = np.add(origin, restored.origin)
        for barcode in found[:1]:
            quad = _corners(barcode) * scale
            if _plausible(quad):
                located += [(restored.image, quad), (gray, quad + shift)]
    return None, None


def _quads(evidence: Sequence[Corner]) -> list[Quad]:
    """The distinct codes located, as corner quads, at most _MAX_SOFT of them."""
    quads: list[Quad] = []
    for i in range(0, len(evidence) - 3, 4):
        quad = np.array(evidence[i : i + 4], np.float64)
        centre = quad.mean(axis=0)
        side = float(np.linalg.norm(quad[1] - quad[0]))
        if _plausible(quad) and all(
            np.linalg.norm(q.mean(axis=0) - centre) > 0.2 * side for q in quads
        ):
            quads.append(quad)
    return quads[:_MAX_SOFT]


def _soft_attempts(
    gray: Gray, located: list[tuple[Gray, Quad]], smeared: bool
) -> tuple[str | None, str | None]:
    """The very last look: sample a located code's modules ourselves and decode with erasures.

    A frame where no stage located a code gets two more ways to locate one: zxing on a
    Gaussian threshold of the whole frame, and, only when the frame shows a smear, OpenCV's
    detector on a mean threshold (its 10-50 ms are too dear for an idle camera's frames).
    """
    start = time.perf_counter()
    deadline = start + SOFT_DEADLINE_MS / 1000.0
    if not located:
        found = _read(_thresholded(gray, 31, gaussian=True), _BOOL, False)
        text = _first_text(found)
        if text is not None:
            return text, "gauss-threshold31-frame"
        located += [(gray, q) for b in found[:1] if _plausible(q := _corners(b))]
    if not located and smeared:
        detected, points = _DETECTOR.detect(_thresholded(gray, 21))
        if detected and points is not None:
            located.append((gray, np.asarray(points, np.float64).reshape(4, 2)))
    for image, quad in located[: 2 * _MAX_SOFT]:
        if (time.perf_counter() - start) * 1000.0 > SOFT_BUDGET_MS:
            break
        text = read_located(image, quad, deadline)
        if text is not None:
            return text, "soft"
    return _lattice_attempts(gray, located, start, deadline) if smeared else (None, None)


def _lattice_attempts(
    gray: Gray, located: list[tuple[Gray, Quad]], start: float, deadline: float
) -> tuple[str | None, str | None]:
    """On a smeared frame: solve for the modules of a code located in the frame, else of the
    frame's largest patches of texture (edge/devices/qr_blurfit.py), starting none after the
    soft budget; all of it raises DeadlinePassedError at `deadline` (perf_counter seconds)."""
    quads = [quad for image, quad in located if image is gray][:1] or textured_quads(gray)
    for quad in quads[:_MAX_SOFT]:
        if (time.perf_counter() - start) * 1000.0 > SOFT_BUDGET_MS:
            break
        text = read_smeared(gray, quad, LATTICE_MS / 1000.0, deadline)
        if text is not None:
            return text, "lattice"
    return None, None


def _plausible(quad: Quad) -> bool:
    """Whether a position could hold a code: zxing gives all zeros for some it failed on."""
    sides = np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1)
    return bool(sides.min() >= 21)


def _corners(barcode: zxingcpp.Barcode) -> Quad:
    p = barcode.position
    return np.array(
        [(c.x, c.y) for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)], np.float64
    )


def _attempt(gray: Gray, stage: Stage, evidence: list[Corner]) -> str | None:
    """Run one stage; add the corners of codes it located, in `gray`'s pixels, to evidence."""
    prepared = stage.prepare(gray)
    found = _read(prepared, stage.binarizer, stage.second_looks)
    text = _first_text(found)
    if text is not None:
        return text
    scale = gray.shape[0] / prepared.shape[0]
    evidence.extend(
        (round(point.x * scale), round(point.y * scale))
        for barcode in found
        for point in (
            barcode.position.top_left,
            barcode.position.top_right,
            barcode.position.bottom_right,
            barcode.position.bottom_left,
        )
    )
    return None


def _read(
    gray: Gray, binarizer: zxingcpp.Binarizer, second_looks: bool = True
) -> list[zxingcpp.Barcode]:
    # return_errors: a code that was located but failed its checksum is the evidence that
    # makes the costlier retries worth running.
    return list(
        zxingcpp.read_barcodes(
            gray,
            formats=_FORMATS,
            text_mode=_TEXT_MODE,
            binarizer=binarizer,
            return_errors=True,
            try_invert=second_looks,
            try_downscale=second_looks,
        )
    )


def _first_text(found: Sequence[zxingcpp.Barcode]) -> str | None:
    for barcode in found:
        if barcode.valid and barcode.error is None:
            return str(barcode.text)
    return None


def _crop(gray: Gray, corners: Sequence[Corner]) -> tuple[Gray, Corner]:
    xs = [x for x, _ in corners]
    ys = [y for _, y in corners]
    margin = int(_ROI_MARGIN * max(max(xs) - min(xs), max(ys) - min(ys))) + 8
    height, width = gray.shape
    x0, x1 = max(0, min(xs) - margin), min(width, max(xs) + margin)
    y0, y1 = max(0, min(ys) - margin), min(height, max(ys) + margin)
    # A version-1 code is 21 modules wide; a narrower box cannot be the whole code.
    if x1 - x0 < 21 or y1 - y0 < 21:
        return gray, (0, 0)
    return np.ascontiguousarray(gray[y0:y1, x0:x1]), (x0, y0)
