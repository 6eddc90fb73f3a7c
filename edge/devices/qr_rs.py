"""Reed-Solomon errors-and-erasures decoding over GF(256), as QR codes use it.

A QR block of n codewords carries n - k check symbols; its generator's roots are alpha^0 ..
alpha^(n-k-1) in GF(256) with the polynomial x^8 + x^4 + x^3 + x^2 + 1. A decoder told which
codewords are unreliable (erasures) repairs e erasures and v errors while 2v + e <= n - k,
against v <= (n - k) / 2 blind. Berlekamp-Massey started from the erasure locator finds the
errors, a Chien search their places and Forney's formula the values (Blahut, "Algebraic Codes
for Data Transmission", 7.4 and 7.6). `margin` check symbols are left unused: a word near
the bound that decodes may be another codeword's neighbour, and a wrong text is worse than
none.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_PRIMITIVE = 0x11D


def _tables() -> tuple[list[int], list[int]]:
    exp, log = [0] * 512, [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        value <<= 1
        if value & 0x100:
            value ^= _PRIMITIVE
    for power in range(255, 512):
        exp[power] = exp[power - 255]
    return exp, log


EXP, LOG = _tables()


def mul(a: int, b: int) -> int:
    """The product of two field elements."""
    return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]


def div(a: int, b: int) -> int:
    """a / b in the field; b must not be 0."""
    if b == 0:
        raise ZeroDivisionError("division by 0 in GF(256)")
    return 0 if a == 0 else EXP[(LOG[a] - LOG[b]) % 255]


def _eval(poly: Sequence[int], x: int) -> int:
    """A polynomial, lowest degree first, at x (Horner)."""
    result = 0
    for coefficient in reversed(poly):
        result = mul(result, x) ^ coefficient
    return result


def _poly_mul(a: Sequence[int], b: Sequence[int]) -> list[int]:
    out = [0] * (len(a) + len(b) - 1)
    for i, ai in enumerate(a):
        if ai:
            for j, bj in enumerate(b):
                out[i + j] ^= mul(ai, bj)
    return out


def generator(check: int) -> list[int]:
    """The generator polynomial of `check` check symbols, highest degree first."""
    poly = [1]
    for power in range(check):
        poly = _poly_mul(poly, [EXP[power], 1])  # lowest first: (alpha^i + x)
    return poly[::-1]


def encode(data: Sequence[int], check: int) -> list[int]:
    """data followed by its `check` check symbols (systematic, as QR blocks are)."""
    gen = generator(check)
    remainder = list(data) + [0] * check
    for i in range(len(data)):
        factor = remainder[i]
        if factor:
            for j in range(1, len(gen)):
                remainder[i + j] ^= mul(gen[j], factor)
    return list(data) + remainder[len(data) :]


_EXP = np.array(EXP, np.int64)
_LOG = np.array(LOG, np.int64)


def syndromes(word: Sequence[int], check: int) -> list[int]:
    """S_j = word(alpha^j), j < check; the word's first symbol is its highest power."""
    symbols = np.asarray(word, np.int64)
    powers = np.arange(len(symbols) - 1, -1, -1)[symbols != 0]
    logs = _LOG[symbols[symbols != 0]]
    if len(logs) == 0:
        return [0] * check
    terms = _EXP[(logs[None, :] + np.arange(check)[:, None] * powers[None, :]) % 255]
    return [int(v) for v in np.bitwise_xor.reduce(terms, axis=1)]


def _roots(locator: Sequence[int], n: int) -> list[int]:
    """The indices i < n whose X_i^-1 is a root of `locator` (Chien search)."""
    coefficients = np.asarray(locator, np.int64)
    degrees = np.nonzero(coefficients)[0]
    logs = _LOG[coefficients[degrees]]
    inverse = (255 - (n - 1 - np.arange(n))) % 255  # log of X_i^-1
    terms = _EXP[(logs[None, :] + inverse[:, None] * degrees[None, :]) % 255]
    return [int(i) for i in np.nonzero(np.bitwise_xor.reduce(terms, axis=1) == 0)[0]]


def decode(
    word: Sequence[int], check: int, erasures: Sequence[int] = (), margin: int = 0
) -> list[int] | None:
    """The corrected word, or None when it is beyond 2v + e <= check - margin.

    `erasures` are indices into word (0 = first symbol) whose values are not to be trusted.
    """
    n = len(word)
    erased = sorted(set(erasures))
    if n > 255 or len(erased) > check - margin or any(not 0 <= i < n for i in erased):
        return None
    synd = syndromes(word, check)
    if not any(synd):
        return list(word)
    locator = _berlekamp_massey(synd, [EXP[n - 1 - i] for i in erased])
    if locator is None:
        return None
    errors = len(locator) - 1 - len(erased)
    if errors < 0 or 2 * errors + len(erased) > check - margin:
        return None
    places = _roots(locator, n)
    if len(places) != len(locator) - 1:
        return None  # the locator's roots are not all inside the word: too many errors
    corrected = list(word)
    omega = _poly_mul(synd, locator)[:check]
    derivative = [locator[j] if j % 2 else 0 for j in range(1, len(locator))]
    for i in places:
        x = EXP[n - 1 - i]
        x_inv = EXP[(255 - (n - 1 - i)) % 255]
        denominator = _eval(derivative, x_inv)
        if denominator == 0:
            return None
        corrected[i] ^= mul(x, div(_eval(omega, x_inv), denominator))
    return corrected if not any(syndromes(corrected, check)) else None


def _berlekamp_massey(synd: Sequence[int], erased: Sequence[int]) -> list[int] | None:
    """The errors-and-erasures locator, lowest degree first, from the erasure locators X_i."""
    locator = [1]
    for x in erased:
        locator = _poly_mul(locator, [1, x])
    previous = list(locator)
    length = len(erased)
    for r in range(len(erased), len(synd)):
        delta = 0
        for j, coefficient in enumerate(locator):
            if j <= r:
                delta ^= mul(coefficient, synd[r - j])
        previous = [0, *previous]
        if delta == 0:
            continue
        updated = [
            (locator[j] if j < len(locator) else 0)
            ^ mul(delta, previous[j] if j < len(previous) else 0)
            for j in range(max(len(locator), len(previous)))
        ]
        if 2 * length <= r + len(erased):
            previous = [div(c, delta) for c in locator]
            length = r + len(erased) + 1 - length
        locator = updated
    while len(locator) > 1 and locator[-1] == 0:
        locator.pop()
    return locator if len(locator) - 1 == length else None
