"""Frames from image files or arrays: the source behind an image-directory camera and the
simulated camera. It needs only the frame type, so camera.py and sim_camera.py both import it
and neither imports the other back."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.devices.base import DeviceError
from edge.devices.qr_decode import ImageReadError, read_image

Frame = NDArray[np.uint8]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})

# Arrays are checked when loaded: non-empty uint8, grayscale or BGR(A).
ImageLike = str | Path | NDArray[Any]

_BLANK_SHAPE = (480, 640, 3)


class ImageFeedSource:
    """A FrameSource showing each image for frames_per_image frames, then one blank frame.

    Once the queue is empty it shows blank frames for ever, so it never stalls.
    """

    live = False

    def __init__(
        self, images: str | Path | Iterable[ImageLike] = (), *, frames_per_image: int = 5
    ) -> None:
        if frames_per_image < 1:
            raise ValueError("frames_per_image must be at least 1")
        self._frames_per_image = frames_per_image
        self._lock = threading.Lock()
        # Images are decoded when their turn comes, so a long feed costs one frame of memory.
        self._queue: deque[ImageLike] = deque(_expand(images))
        self._playing: deque[Frame] = deque()
        self._current: Frame = np.full(_BLANK_SHAPE, 255, np.uint8)

    def show(self, image: ImageLike) -> None:
        """Show this image now in place of the current one; raises DeviceError if unreadable.

        Images still queued follow it.
        """
        frames = self._showing(image)
        with self._lock:
            self._playing = deque(frames)

    def grab(self) -> bool:
        """Advance to the next frame; a feed always has one."""
        with self._lock:
            while not self._playing and self._queue:
                try:
                    self._playing = deque(self._showing(self._queue.popleft()))
                except DeviceError:
                    continue  # an unreadable file in the feed is skipped, as a camera would
            if self._playing:
                self._current = self._playing.popleft()
        return True

    def retrieve(self) -> Frame | None:
        """Return the frame grab() advanced to."""
        with self._lock:
            return self._current

    def release(self) -> None:
        """Nothing to release; present for the FrameSource protocol."""

    def _showing(self, image: ImageLike) -> list[Frame]:
        frame = _load(image)
        # The blank frame lets the agent see the code go away between two images.
        blank = np.full_like(frame, 255)
        return [frame] * self._frames_per_image + [blank]  # one array each, repeated by reference


def _expand(images: str | Path | Iterable[ImageLike]) -> list[ImageLike]:
    if not isinstance(images, str | Path):
        listed = list(images)
        for item in listed:
            if isinstance(item, str | Path) and not Path(item).is_file():
                raise DeviceError(f"image feed cannot read {item}: no such file")
        return listed
    path = Path(images)
    if not path.is_dir():
        if not path.is_file():
            raise DeviceError(f"image feed cannot read {path}: no such file")
        return [path]
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DeviceError(f"image feed directory {path} holds no images")
    return list(files)


def _load(image: ImageLike) -> Frame:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
            raise DeviceError(f"image feed needs a non-empty uint8 image, got {image.dtype}")
        return np.array(image, np.uint8)
    try:
        return read_image(image)
    except ImageReadError as exc:
        raise DeviceError(f"image feed cannot read {exc}") from exc
