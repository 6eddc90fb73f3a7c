"""Where a QR code (Model 2, versions 1-10) keeps what: ISO/IEC 18004 tables and positions.

Enough to read a symbol from its module grid ourselves (edge/devices/qr_soft.py): which
modules are function patterns, the two copies of the format information, the data modules in
reading order, and each level's Reed-Solomon blocks.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray

MAX_VERSION = 10
LEVELS = "LMQH"
# The two format bits name the level: 01 L, 00 M, 11 Q, 10 H.
_LEVEL_BITS = {"L": 1, "M": 0, "Q": 3, "H": 2}
_FORMAT_MASK = 0x5412

# Per version, per level: (check symbols per block, [(blocks, data codewords per block), ...]).
BLOCKS: dict[int, dict[str, tuple[int, tuple[tuple[int, int], ...]]]] = {
    1: {"L": (7, ((1, 19),)), "M": (10, ((1, 16),)), "Q": (13, ((1, 13),)), "H": (17, ((1, 9),))},
    2: {"L": (10, ((1, 34),)), "M": (16, ((1, 28),)), "Q": (22, ((1, 22),)), "H": (28, ((1, 16),))},
    3: {"L": (15, ((1, 55),)), "M": (26, ((1, 44),)), "Q": (18, ((2, 17),)), "H": (22, ((2, 13),))},
    4: {"L": (20, ((1, 80),)), "M": (18, ((2, 32),)), "Q": (26, ((2, 24),)), "H": (16, ((4, 9),))},
    5: {
        "L": (26, ((1, 108),)),
        "M": (24, ((2, 43),)),
        "Q": (18, ((2, 15), (2, 16))),
        "H": (22, ((2, 11), (2, 12))),
    },
    6: {"L": (18, ((2, 68),)), "M": (16, ((4, 27),)), "Q": (24, ((4, 19),)), "H": (28, ((4, 15),))},
    7: {
        "L": (20, ((2, 78),)),
        "M": (18, ((4, 31),)),
        "Q": (18, ((2, 14), (4, 15))),
        "H": (26, ((4, 13), (1, 14))),
    },
    8: {
        "L": (24, ((2, 97),)),
        "M": (22, ((2, 38), (2, 39))),
        "Q": (22, ((4, 18), (2, 19))),
        "H": (26, ((4, 14), (2, 15))),
    },
    9: {
        "L": (30, ((2, 116),)),
        "M": (22, ((3, 36), (2, 37))),
        "Q": (20, ((4, 16), (4, 17))),
        "H": (24, ((4, 12), (4, 13))),
    },
    10: {
        "L": (18, ((2, 68), (2, 69))),
        "M": (26, ((4, 43), (1, 44))),
        "Q": (24, ((6, 19), (2, 20))),
        "H": (28, ((6, 15), (2, 16))),
    },
}
ALIGNMENT: dict[int, tuple[int, ...]] = {
    1: (),
    2: (6, 18),
    3: (6, 22),
    4: (6, 26),
    5: (6, 30),
    6: (6, 34),
    7: (6, 22, 38),
    8: (6, 24, 42),
    9: (6, 26, 46),
    10: (6, 28, 50),
}

Mask = NDArray[np.bool_]
Cell = tuple[int, int]  # (row, column)


def size(version: int) -> int:
    """Modules on a side."""
    return 17 + 4 * version


def alignment_centres(version: int) -> list[Cell]:
    """The alignment patterns' centres, leaving out the three under finder patterns."""
    spots = ALIGNMENT[version]
    last = spots[-1] if spots else 0
    return [
        (r, c)
        for r in spots
        for c in spots
        if not ((r, c) == (6, 6) or (r, c) == (6, last) or (r, c) == (last, 6))
    ]


@cache
def function_modules(version: int) -> Mask:
    """True where a module is a finder, separator, timing, alignment, format or version one."""
    n = size(version)
    used = np.zeros((n, n), bool)
    used[:9, :9] = used[:9, n - 8 :] = used[n - 8 :, :9] = True  # finders, separators, format
    used[6, :] = used[:, 6] = True
    for r, c in alignment_centres(version):
        used[r - 2 : r + 3, c - 2 : c + 3] = True
    if version >= 7:
        used[:6, n - 11 : n - 8] = used[n - 11 : n - 8, :6] = True
    return used


@cache
def data_cells(version: int) -> tuple[Cell, ...]:
    """The data modules in reading order: two-column strips from the right, up and down."""
    n = size(version)
    used = function_modules(version)
    cells: list[Cell] = []
    upward = True
    column = n - 1
    while column > 0:
        if column == 6:
            column -= 1  # the vertical timing pattern
        for count in range(n):
            row = n - 1 - count if upward else count
            for c in (column, column - 1):
                if not used[row, c]:
                    cells.append((row, c))
        upward = not upward
        column -= 2
    return tuple(cells)


def format_cells(version: int) -> tuple[tuple[Cell, ...], tuple[Cell, ...]]:
    """The two copies of the 15 format bits, most significant first, as (row, column)."""
    n = size(version)
    first = (
        *((8, c) for c in range(6)),
        (8, 7),
        (8, 8),
        (7, 8),
        *((r, 8) for r in range(5, -1, -1)),
    )
    second = (*((r, 8) for r in range(n - 1, n - 8, -1)), *((8, c) for c in range(n - 8, n)))
    return first, second


@cache
def format_words() -> dict[int, tuple[str, int]]:
    """Every valid 15-bit format word (as printed, masked) -> (level, mask pattern)."""
    words = {}
    for level, bits in _LEVEL_BITS.items():
        for mask in range(8):
            data = (bits << 3) | mask
            remainder = data << 10
            for shift in range(4, -1, -1):
                if remainder & (1 << (shift + 10)):
                    remainder ^= 0x537 << shift
            words[((data << 10) | remainder) ^ _FORMAT_MASK] = (level, mask)
    return words


def mask_pattern(mask: int, version: int) -> Mask:
    """True where mask pattern `mask` flips a module."""
    n = size(version)
    i, j = np.mgrid[0:n, 0:n]
    patterns = (
        (i + j) % 2 == 0,
        i % 2 == 0,
        j % 3 == 0,
        (i + j) % 3 == 0,
        (i // 2 + j // 3) % 2 == 0,
        (i * j) % 2 + (i * j) % 3 == 0,
        ((i * j) % 2 + (i * j) % 3) % 2 == 0,
        ((i + j) % 2 + (i * j) % 3) % 2 == 0,
    )
    return np.asarray(patterns[mask], bool)


def codeword_count(version: int) -> int:
    """Data and check codewords together."""
    check, groups = BLOCKS[version]["M"]
    return sum(count * (data + check) for count, data in groups)


def block_layout(version: int, level: str) -> list[tuple[int, int]]:
    """Per block: (data codewords, check codewords), in the symbol's block order."""
    check, groups = BLOCKS[version][level]
    return [(data, check) for count, data in groups for _ in range(count)]


def block_indices(version: int, level: str) -> list[list[int]]:
    """Per block, the indices of its codewords (data, then check) in the symbol's order."""
    layout = block_layout(version, level)
    blocks: list[list[int]] = [[] for _ in layout]
    position = 0
    for i in range(max(data for data, _ in layout)):
        for b, (data, _) in enumerate(layout):
            if i < data:
                blocks[b].append(position)
                position += 1
    for _ in range(layout[0][1]):
        for b in range(len(layout)):
            blocks[b].append(position)
            position += 1
    return blocks
