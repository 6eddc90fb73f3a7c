"""decode_frame: garbage in gives None, generated codes come back byte for byte."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.devices.qr_decode import decode_frame, decode_with_stage

BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def render(text: str, scale: int = 4, border: int = 4) -> np.ndarray:
    """Render text as a regular QR code: a grayscale uint8 image, dark modules black."""
    code = segno.make_qr(text)
    modules = np.array(list(code.matrix_iter(scale=scale, border=border)), dtype=np.uint8)
    return np.asarray((1 - modules) * 255, np.uint8)


GARBAGE: list[Any] = [
    None,
    "MJ1:ABC",
    [[0, 255], [255, 0]],
    np.zeros(0, np.uint8),
    np.zeros((0, 10, 3), np.uint8),
    np.zeros((1, 1), np.uint8),
    np.zeros((1, 1, 3), np.uint8),
    np.zeros((100, 100), np.float32),
    np.zeros((100, 100), np.uint16),
    np.zeros((100, 100, 2), np.uint8),
    np.zeros((4, 4, 4, 4), np.uint8),
    np.zeros((100,), np.uint8),
    np.full((480, 640, 3), 255, np.uint8),
    np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8),
]


@pytest.mark.parametrize("image", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_gives_none(image: Any) -> None:
    assert decode_frame(image) is None


def test_alphanumeric_base45_text_decodes_exactly() -> None:
    text = "MJ1:ABC $%*+-./:"
    assert segno.make_qr(text).mode == "alphanumeric"
    assert decode_frame(render(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "line one\r\nline two\r\n",
        "门禁 通行证 3号楼",
        "\x01\x10control characters stay as they are",
        "MJ1:" + BASE45[:43] * 7,
    ],
    ids=["crlf", "utf8", "control", "long-base45"],
)
def test_text_decodes_byte_for_byte(text: str) -> None:
    decoded = decode_frame(render(text))
    assert decoded is not None
    assert decoded.encode() == text.encode()


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_gray_bgr_and_bgra_frames(channels: int) -> None:
    gray = render("MJ1:CHANNELS")
    frame = {
        1: gray[:, :, np.newaxis],
        3: cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR),
        4: cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA),
    }[channels]
    assert decode_frame(frame) == "MJ1:CHANNELS"


def test_code_in_a_strided_view_of_a_noisy_frame() -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(100, 160, (480, 640), dtype=np.uint8)
    code = render("MJ1:IN A SCENE", scale=3)
    frame[100 : 100 + code.shape[0], 200 : 200 + code.shape[1]] = code
    view = frame[:, 100:600]
    assert not view.flags.c_contiguous
    assert decode_with_stage(view) == ("MJ1:IN A SCENE", "local")


def test_micro_qr_is_not_read() -> None:
    micro = segno.make_micro("12345")
    modules = np.array(list(micro.matrix_iter(scale=6, border=2)), dtype=np.uint8)
    assert decode_frame(np.asarray((1 - modules) * 255, np.uint8)) is None


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=BASE45, min_size=1, max_size=200))
def test_any_base45_text_round_trips(text: str) -> None:
    assert decode_frame(render(text, scale=3)) == text
