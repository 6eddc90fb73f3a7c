"""CameraReader on real OpenCV captures (a video file, image files) and the ImageFeedCamera."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno

from edge.devices.base import DeviceError, PassReader
from edge.devices.camera import CameraReader
from edge.devices.sim_camera import ImageFeedCamera

SIZE = (240, 320)


def qr_frame(text: str) -> np.ndarray:
    """A 320x240 BGR frame with a QR code of text on a mid-gray background."""
    modules = np.array(list(segno.make_qr(text).matrix_iter(scale=4, border=4)), np.uint8)
    frame = np.full((*SIZE, 3), 128, np.uint8)
    code = cv2.cvtColor(np.asarray((1 - modules) * 255, np.uint8), cv2.COLOR_GRAY2BGR)
    top, left = (SIZE[0] - code.shape[0]) // 2, (SIZE[1] - code.shape[1]) // 2
    frame[top : top + code.shape[0], left : left + code.shape[1]] = code
    return frame


def blank_frame() -> np.ndarray:
    return np.full((*SIZE, 3), 128, np.uint8)


def distinct_texts(reader: PassReader, quiet: float = 0.5, limit: float = 10.0) -> list[str]:
    """Read until nothing is decoded for `quiet` seconds; texts in order, repeats collapsed."""
    seen: list[str] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = reader.read(quiet)
        if text is None:
            break
        if not seen or seen[-1] != text:
            seen.append(text)
    return seen


def read_until_error(reader: PassReader, limit: float) -> None:
    """Keep reading for up to limit seconds; a DeviceError ends it early."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        reader.read(0.2)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A 2 s MJPG video: blank, then a QR code for a second, then blank again."""
    path = tmp_path / "gate.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, SIZE[::-1])
    assert writer.isOpened()
    for frame in [blank_frame()] * 5 + [qr_frame("MJ1:VIDEO PASS")] * 10 + [blank_frame()] * 5:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def camera(video: Path) -> Iterator[CameraReader]:
    reader = CameraReader(str(video), max_fps=40.0, stall_timeout=0.5)
    yield reader
    reader.close()


def test_camera_reads_the_qr_code_in_a_video(camera: CameraReader) -> None:
    assert camera.read(timeout=5.0) == "MJ1:VIDEO PASS"
    frame = camera.last_frame()
    assert frame is not None
    assert frame.shape == (*SIZE, 3)


def test_a_video_that_ends_stalls_and_reopens(
    camera: CameraReader,
) -> None:
    start = time.monotonic()
    with pytest.raises(DeviceError, match="no frame"):
        read_until_error(camera, limit=10.0)
    # 20 frames at 40 fps take 0.5 s, then the 0.5 s stall timeout runs out.
    assert 0.8 < time.monotonic() - start < 5.0
    camera.open()  # what the agent does to reconnect
    assert camera.read(timeout=5.0) == "MJ1:VIDEO PASS"


def test_max_fps_bounds_the_frame_rate(video: Path) -> None:
    reader = CameraReader(str(video), max_fps=10.0, stall_timeout=5.0)
    try:
        start = time.monotonic()
        assert reader.read(timeout=5.0) == "MJ1:VIDEO PASS"
        # The code first appears in frame 6; at 10 fps that is half a second in.
        assert time.monotonic() - start > 0.4
    finally:
        reader.close()


@pytest.mark.parametrize("source", ["/nonexistent/gate.avi", "rtsp://127.0.0.1:9/none", 97])
def test_a_source_that_cannot_be_opened_raises_device_error(source: str | int) -> None:
    with pytest.raises(DeviceError, match="camera source"):
        CameraReader(source)


def test_read_after_close_raises_device_error(camera: CameraReader) -> None:
    camera.close()
    with pytest.raises(DeviceError, match="closed"):
        camera.read(timeout=0.1)


def test_camera_reader_shows_a_directory_of_images(tmp_path: Path) -> None:
    for name, text in [("1-first.png", "MJ1:FIRST"), ("2-second.jpg", "MJ1:SECOND")]:
        assert cv2.imwrite(str(tmp_path / name), qr_frame(text))
    (tmp_path / "readme.txt").write_text("not an image, skipped")
    reader = CameraReader(str(tmp_path), max_fps=25.0)
    try:
        assert distinct_texts(reader) == ["MJ1:FIRST", "MJ1:SECOND"]
        # The feed ends in blank frames, which are not a stall.
        assert reader.read(timeout=0.3) is None
    finally:
        reader.close()


def test_image_feed_camera_plays_its_images_then_shows_injected_ones(tmp_path: Path) -> None:
    path = tmp_path / "third.png"
    assert cv2.imwrite(str(path), qr_frame("MJ1:THIRD"))
    feed = ImageFeedCamera(
        [qr_frame("MJ1:ONE"), blank_frame(), qr_frame("MJ1:TWO")], frames_per_image=4, max_fps=25
    )
    try:
        assert distinct_texts(feed) == ["MJ1:ONE", "MJ1:TWO"]
        assert feed.read(timeout=0.3) is None
        feed.show(path)
        assert feed.read(timeout=2.0) == "MJ1:THIRD"
        # A second show() replaces the image on screen rather than queueing behind it.
        feed.show(cv2.cvtColor(qr_frame("MJ1:GRAY"), cv2.COLOR_BGR2GRAY))
        # A frame of the old image captured just before show() may still be read (more than
        # one only on a box this loaded); after that only the new image is on screen.
        seen = []
        deadline = time.monotonic() + 3.0
        while "MJ1:GRAY" not in seen and time.monotonic() < deadline:
            text = feed.read(timeout=0.5)
            if text is not None:
                seen.append(text)
        assert seen[-1:] == ["MJ1:GRAY"] and seen.count("MJ1:THIRD") <= 2, seen
        assert distinct_texts(feed) in ([], ["MJ1:GRAY"])
        assert feed.last_frame() is not None
    finally:
        feed.close()


def test_image_feed_camera_rejects_an_unreadable_image(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="cannot read"):
        ImageFeedCamera([tmp_path / "missing.png"])


def test_frames_the_decoder_fails_on_are_counted_in_the_gate_counters(tmp_path: Path) -> None:
    import threading

    from edge.assemble import assemble_gate
    from edge.config import load_gate_settings
    from edge.gate import DeviceFactories
    from tests.integration.agent_helpers import make_keys, wait_for, write_config

    settings = load_gate_settings(write_config(tmp_path, make_keys(tmp_path), {}))
    camera = ImageFeedCamera(max_fps=50)
    agent = assemble_gate(settings, DeviceFactories(reader=lambda: camera), uplink=False).agent
    runner = threading.Thread(target=agent.run)
    runner.start()
    try:
        wait_for(lambda: agent.counters().get("reader_decode_errors") == 0, what="reader open")
        # Wider than zxing accepts (65535): the decoder raises on every such frame.
        camera.show(np.zeros((2, 70_000), np.uint8))
        wait_for(lambda: agent.counters()["reader_decode_errors"] >= 1, what="error counted")
        camera.show(qr_frame("MJ1:AFTER"))
        wait_for(lambda: agent.stats.presentations == 1, what="decoding goes on")
        assert agent.counters()["reader_up"] is True
    finally:
        agent.stop.set()
        runner.join(10)
        agent.cache.close()


def test_whole_frame_second_looks_run_on_a_budget(video: Path) -> None:
    # An idle camera at 25 fps must not pay the ~4 ms blind stages on every frame, nor a
    # blurred code the 20-375 ms soft look on every frame.
    cam = CameraReader(video, max_fps=25, blind_fps=4, soft_fps=2)
    never = CameraReader(video, max_fps=25, blind_fps=0, soft_fps=0)
    try:
        for limit, period in ((cam._blind, 0.25), (cam._soft, 0.5)):
            due = [limit.due() for _ in range(5)]
            assert due == [True, False, False, False, False]
            time.sleep(period + 0.05)
            assert limit.due()
        assert not any(never._blind.due() or never._soft.due() for _ in range(3))
    finally:
        cam.close()
        never.close()
