"""Read a QR symbol from soft module values: the format, the codewords, erasure-aware RS, text.

Each module comes as a signed darkness: positive is dark, its size how sure the sampler is,
0 unknown (a pixel clipped to white, say). The least sure codewords of each block become
erasures (edge/devices/qr_rs.py), in growing numbers, until the block decodes with MARGIN
check symbols to spare. A text comes back only when every block decodes, the segments parse
and the padding after them is the standard's, so a misread grid gives None, not a wrong text.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edge.devices import qr_layout as layout
from edge.devices import qr_rs

Soft = NDArray[np.float32]

MARGIN = 2
# Erasure counts tried per block, as fractions of its check symbols (0: plain correction).
_ERASURE_STEPS = (0.0, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0)
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def read_soft(dark: Soft) -> str | None:
    """The text of the symbol whose modules' signed darkness is `dark` (n x n), or None."""
    n = dark.shape[0]
    version = (n - 17) // 4
    if dark.shape != (n, n) or layout.size(version) != n or not 1 <= version <= 10:
        return None
    for level, mask in _format_candidates(dark, version):
        text = _read_as(dark, version, level, mask)
        if text is not None:
            return text
    return None


def _format_candidates(dark: Soft, version: int) -> list[tuple[str, int]]:
    """Valid (level, mask) pairs whose format word the two copies agree with best, best first."""
    first, second = layout.format_cells(version)
    soft = np.array([[dark[r, c] for r, c in copy] for copy in (first, second)], np.float32)
    scored = []
    for word, pair in layout.format_words().items():
        bits = np.array([(word >> (14 - i)) & 1 for i in range(15)], np.float32)
        # A disagreeing module costs what the sampler was sure of it.
        cost = float(np.sum(np.maximum(0.0, -(2 * bits - 1) * soft)))
        scored.append((cost, pair))
    scored.sort()
    best = scored[0][0]
    return [pair for cost, pair in scored[:3] if cost <= best + 0.5 * max(best, 1.0)]


def _read_as(dark: Soft, version: int, level: str, mask: int) -> str | None:
    cells = layout.data_cells(version)
    flip = layout.mask_pattern(mask, version)
    rows = np.array([r for r, _ in cells])
    cols = np.array([c for _, c in cells])
    values = dark[rows, cols]
    bits = (values > 0) ^ flip[rows, cols]
    count = layout.codeword_count(version)
    bits = bits[: 8 * count].reshape(count, 8)
    words = (bits * (1 << np.arange(7, -1, -1))).sum(axis=1).astype(int).tolist()
    sureness = np.abs(values[: 8 * count]).reshape(count, 8).min(axis=1)
    data: list[int] = []
    for (length, check), indices in zip(
        layout.block_layout(version, level), layout.block_indices(version, level), strict=True
    ):
        block = _decode_block([words[i] for i in indices], sureness[indices], check)
        if block is None:
            return None
        data.extend(block[:length])
    return parse_segments(data, version)


def _decode_block(word: list[int], sureness: NDArray[np.float32], check: int) -> list[int] | None:
    order = np.argsort(sureness, kind="stable").tolist()
    unknown = int(np.sum(sureness <= 0))
    tried = set()
    for step in _ERASURE_STEPS:
        erasures = max(unknown, round(step * (check - MARGIN)))
        erasures = min(erasures, check - MARGIN)
        if erasures in tried:
            continue
        tried.add(erasures)
        decoded = qr_rs.decode(word, check, order[:erasures], MARGIN)
        if decoded is not None:
            return decoded
    return None


class _Bits:
    def __init__(self, data: list[int]) -> None:
        self.data = data
        self.position = 0

    def left(self) -> int:
        return 8 * len(self.data) - self.position

    def take(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self.data[self.position // 8]
            value = (value << 1) | ((byte >> (7 - self.position % 8)) & 1)
            self.position += 1
        return value


def parse_segments(data: list[int], version: int) -> str | None:
    """The text of numeric, alphanumeric and byte segments; None for anything else, or when
    the padding after them is not the standard's."""
    bits = _Bits(data)
    big = version >= 10
    parts: list[str] = []
    while bits.left() >= 4:
        mode = bits.take(4)
        if mode == 0:
            break
        count_bits = {1: 12 if big else 10, 2: 11 if big else 9, 4: 16 if big else 8}.get(mode)
        if count_bits is None or bits.left() < count_bits:
            return None  # ECI, Kanji, structured append, FNC1: not in a pass
        part = _segment(bits, mode, bits.take(count_bits))
        if part is None:
            return None
        parts.append(part)
    return "".join(parts) if parts and _padding_ok(bits) else None


def _segment(bits: _Bits, mode: int, count: int) -> str | None:
    if mode == 1:
        digits = []
        while count > 0:
            size = min(3, count)
            width = (4, 7, 10)[size - 1]
            if bits.left() < width:
                return None
            value = bits.take(width)
            if value >= 10**size:
                return None
            digits.append(str(value).zfill(size))
            count -= size
        return "".join(digits)
    if mode == 2:
        chars = []
        while count > 0:
            width = 11 if count >= 2 else 6
            if bits.left() < width:
                return None
            value = bits.take(width)
            if count >= 2:
                if value >= 45 * 45:
                    return None
                chars += [_ALNUM[value // 45], _ALNUM[value % 45]]
            else:
                if value >= 45:
                    return None
                chars.append(_ALNUM[value])
            count -= 2
        return "".join(chars)
    if bits.left() < 8 * count:
        return None
    raw = bytes(bits.take(8) for _ in range(count))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _padding_ok(bits: _Bits) -> bool:
    """After the terminator: zero bits to the byte, then 0xEC 0x11 alternating.

    One whole zero byte may come first: segno (which draws our passes) adds a byte of
    padding bits when the terminator already ends on a byte boundary.
    """
    while bits.left() % 8:
        if bits.take(1):
            return False
    pad = [bits.take(8) for _ in range(bits.left() // 8)]
    if pad and pad[0] == 0:
        pad = pad[1:]
    return all(byte == (0xEC, 0x11)[i % 2] for i, byte in enumerate(pad))
