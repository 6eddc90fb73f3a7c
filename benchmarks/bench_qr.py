"""Decode the real QR photo set with the gate pipeline and with one raw zxing-cpp call; compare.

Run: .venv/bin/python benchmarks/bench_qr.py [PHOTO_DIR]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import zxingcpp

from edge.devices.qr_decode import decode_frame, decode_with_stage, read_image

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "qr-photos"
# ZXing's Java MultiFormatReader on the same images (README.md of the photo set).
ZXING_REFERENCE = {"set-1": 17, "set-2": 32, "set-3": 38, "set-4": 36, "set-5": 19, "set-6": 15}
REPEATS = 5


@dataclass
class Photo:
    """One photo with the exact bytes it encodes."""

    name: str
    group: str
    image: np.ndarray
    expected: bytes


def load(root: Path) -> list[Photo]:
    """Load every N.png with its N.txt, in set and number order."""
    photos = []
    for group in sorted(p for p in root.iterdir() if p.is_dir()):
        for png in sorted(group.glob("*.png"), key=lambda p: int(p.stem)):
            photos.append(
                Photo(
                    f"{group.name}/{png.stem}",
                    group.name,
                    read_image(png),
                    png.with_suffix(".txt").read_bytes(),
                )
            )
    return photos


def raw_decode(image: np.ndarray) -> str | None:
    """The baseline: a single zxing-cpp call with the library's defaults, no pipeline."""
    found = zxingcpp.read_barcodes(image)
    return str(found[0].text) if found else None


def timed(
    decode: Callable[[np.ndarray], str | None], image: np.ndarray
) -> tuple[str | None, float]:
    """Decode REPEATS times; return the text and the median time in ms."""
    times = []
    text = None
    for _ in range(REPEATS):
        start = time.perf_counter()
        text = decode(image)
        times.append((time.perf_counter() - start) * 1000.0)
    return text, statistics.median(times)


def exact(text: str | None, expected: bytes) -> bool:
    """True when the decoded text is byte for byte the expected text."""
    return text is not None and text.encode("utf-8") == expected


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


def opencv_on_misses(misses: list[Photo]) -> str:
    """How many of our misses OpenCV's QR detector decodes exactly, and at what cost."""
    detector = cv2.QRCodeDetector()
    hits, times = 0, []
    for photo in misses:
        start = time.perf_counter()
        text, _, _ = detector.detectAndDecode(photo.image)
        times.append((time.perf_counter() - start) * 1000.0)
        hits += exact(text or None, photo.expected)
    mean = statistics.mean(times) if times else 0.0
    return f"OpenCV QRCodeDetector on our {len(misses)} misses: {hits} exact, {mean:.1f} ms each"


def idle_cost() -> str:
    """Time per 640x480 frame with no code in it: the gate's usual frame."""
    noise = np.random.default_rng(7).integers(0, 256, (480, 640), dtype=np.uint8)
    frame = cv2.cvtColor(cv2.GaussianBlur(noise, (0, 0), 3), cv2.COLOR_GRAY2BGR)
    _, ours = timed(decode_frame, frame)
    _, raw = timed(raw_decode, frame)
    return f"idle 640x480 frame, no code: ours {ours:.2f} ms, raw {raw:.2f} ms"


def raw_qr_decode(image: np.ndarray) -> str | None:
    """A second baseline: one call restricted to QR codes, to show what the pipeline adds."""
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormats(zxingcpp.QRCode))
    return str(found[0].text) if found else None


DECODERS: dict[str, Callable[[np.ndarray], str | None]] = {
    "ours": decode_frame,
    "raw": raw_decode,
    "raw-qr": raw_qr_decode,
}


def main() -> None:
    """Print decode counts per set beside ZXing's, then timings against the raw baseline."""
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else PHOTOS
    photos = load(root)
    for photo in photos[:3]:  # warm up caches and lazy initialisation
        for decode in DECODERS.values():
            decode(photo.image)
    decoded = {name: Counter[str]() for name in DECODERS}
    millis: dict[str, list[float]] = {name: [] for name in DECODERS}
    stages: Counter[str] = Counter()
    misses = []
    for photo in photos:
        for name, decode in DECODERS.items():
            text, ms = timed(decode, photo.image)
            millis[name].append(ms)
            decoded[name][photo.group] += exact(text, photo.expected)
            if name == "ours" and exact(text, photo.expected):
                stages[str(decode_with_stage(photo.image)[1])] += 1
            elif name == "ours":
                misses.append(photo)
    print_counts(photos, decoded)
    print("ours, decoded by stage:", dict(stages.most_common()))
    print("ours, missed:", " ".join(p.name for p in misses))
    print_times(millis)
    print(idle_cost())
    print(opencv_on_misses(misses))


def print_counts(photos: list[Photo], decoded: dict[str, Counter[str]]) -> None:
    """Print exact decodes per set for each decoder and for ZXing's Java reader."""
    sizes = Counter(p.group for p in photos)
    print(f"{'set':8}" + "".join(f"{name:>8}" for name in decoded) + f"{'ZXing':>8}{'of':>5}")
    for group in sorted(sizes):
        counts = "".join(f"{decoded[name][group]:8}" for name in decoded)
        print(f"{group:8}{counts}{ZXING_REFERENCE.get(group, 0):8}{sizes[group]:5}")
    totals = "".join(f"{sum(decoded[name].values()):8}" for name in decoded)
    print(f"{'total':8}{totals}{sum(ZXING_REFERENCE.values()):8}{len(photos):5}")


def print_times(millis: dict[str, list[float]]) -> None:
    """Print median, p95 and mean ms per frame, and ours as a ratio to each baseline."""
    for name, values in millis.items():
        med, mean = statistics.median(values), statistics.mean(values)
        print(f"{name:7} median {med:.2f} ms, p95 {p95(values):.2f} ms, mean {mean:.2f} ms")
    ours = millis["ours"]
    for name in ("raw", "raw-qr"):
        base = millis[name]
        median_ratio = statistics.median(ours) / statistics.median(base)
        print(f"ours/{name}: median {median_ratio:.2f}x, total {sum(ours) / sum(base):.2f}x")


if __name__ == "__main__":
    main()
