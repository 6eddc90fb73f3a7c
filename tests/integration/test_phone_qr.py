"""The phone's hand-written QR encoder (central/phone/static/qr.js), run in Chromium: the same
modules as segno for a given mask, and every length read back by the gate's own decoder."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import segno

from edge.devices.qr_decode import decode_frame
from protocol.base45 import ALPHABET
from tests.integration.phone_helpers import Central

LENGTHS = [1, 2, 19, 20, 21, 38, 61, 90, 122, 154, 178, 200, 221, 250, 262, 290, 305, 310, 311]


def _encode_in_browser(phone_browser: Any, phone_central: Central, cases: list[Any]) -> Any:
    page = phone_browser.new_page()
    page.goto(f"{phone_central.url}/phone/")
    found = page.evaluate(
        """async (cases) => {
          const qr = await import("/phone/static/qr.js");
          return cases.map(([text, mask]) => {
            const r = qr.encode(text, mask);
            return { version: r.version, mask: r.mask, dark: r.dark };
          });
        }""",
        cases,
    )
    page.close()
    return found


def _segno_pads_a_whole_byte(text: str, version: int) -> bool:
    # segno 1.6 adds 8 zero bits when the terminated bit stream already ends on a byte
    # boundary, where ISO/IEC 18004 7.4.10 adds none; both symbols decode to the same text.
    bits = 4 + (9 if version <= 9 else 11) + len(text) // 2 * 11 + len(text) % 2 * 6
    capacity = {1: 16, 2: 28, 3: 44, 4: 64, 5: 86, 6: 108, 7: 124, 8: 154, 9: 182, 10: 216}
    room = capacity[version] * 8
    terminated = bits + min(4, room - bits)
    return terminated % 8 == 0 and terminated < room


def test_same_modules_as_segno(phone_browser: Any, phone_central: Central) -> None:
    rng = random.Random(5)
    cases = [("".join(rng.choice(ALPHABET) for _ in range(n)), n % 8) for n in LENGTHS]
    compared = 0
    for (text, mask), got in zip(cases, _encode_in_browser(phone_browser, phone_central, cases),
                                 strict=True):  # fmt: skip
        ref = segno.make(text, error="m", mode="alphanumeric", mask=mask, boost_error=False,
                         micro=False)  # fmt: skip
        assert got["version"] == ref.version, len(text)
        if _segno_pads_a_whole_byte(text, ref.version):
            continue
        assert got["dark"] == [[bool(m) for m in row] for row in ref.matrix], len(text)
        compared += 1
    assert compared >= len(LENGTHS) - 2


def test_every_length_decodes_with_the_gate_decoder(
    phone_browser: Any, phone_central: Central
) -> None:
    rng = random.Random(6)
    cases = [("".join(rng.choice(ALPHABET) for _ in range(n)), None) for n in range(1, 312, 5)]
    cases.append(("9" * 311, None))
    for (text, _), got in zip(cases, _encode_in_browser(phone_browser, phone_central, cases),
                              strict=True):  # fmt: skip
        modules = np.array(got["dark"], dtype=bool)
        image = np.where(np.pad(modules, 4), 0, 255).astype(np.uint8)
        assert decode_frame(np.kron(image, np.ones((5, 5), np.uint8))) == text, len(text)
        assert got["version"] <= 10
