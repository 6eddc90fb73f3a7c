"""Base45 (RFC 9285): bytes <-> text in the QR alphanumeric character set."""

from __future__ import annotations

import struct

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUES = {ch: i for i, ch in enumerate(ALPHABET)}
# bytes.translate table: alphabet byte -> its value, anything else -> 0xFF (invalid marker).
_TRANSLATE = bytes(_VALUES.get(chr(b), 0xFF) for b in range(256))


class Base45Error(ValueError):
    """The text is not valid base45."""


def b45encode(data: bytes) -> str:
    """Encode bytes as base45 text."""
    out: list[str] = []
    a = ALPHABET
    for i in range(0, len(data) - 1, 2):
        n = (data[i] << 8) | data[i + 1]
        n, c0 = divmod(n, 45)
        c2, c1 = divmod(n, 45)
        out.append(a[c0] + a[c1] + a[c2])
    if len(data) % 2:
        c1, c0 = divmod(data[-1], 45)
        out.append(a[c0] + a[c1])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode base45 text; raises Base45Error on any invalid character, length or value."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise Base45Error("non-ASCII character") from exc
    vals = raw.translate(_TRANSLATE)
    if 0xFF in vals:
        raise Base45Error("character outside the base45 alphabet")
    full, rest = divmod(len(vals), 3)
    if rest == 1:
        raise Base45Error("length leaves a dangling character")
    it = iter(vals[: full * 3])
    chunks = [a + b * 45 + c * 2025 for a, b, c in zip(it, it, it, strict=True)]
    try:
        out = struct.pack(f">{full}H", *chunks)
    except struct.error as exc:
        raise Base45Error("chunk value out of range") from exc
    if rest == 2:
        n = vals[-2] + vals[-1] * 45
        if n > 0xFF:
            raise Base45Error("final chunk value out of range")
        out += bytes((n,))
    return out
