"""A simulated camera fed from image files, for tests and demos; it decodes like the real one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from edge.devices.camera import CameraReader
from edge.devices.image_feed import ImageFeedSource, ImageLike

__all__ = ["ImageFeedCamera", "ImageFeedSource", "ImageLike"]


class ImageFeedCamera(CameraReader):
    """A CameraReader on an ImageFeedSource, with show() to put an image in front of it."""

    def __init__(
        self,
        images: str | Path | Iterable[ImageLike] = (),
        *,
        frames_per_image: int = 5,
        max_fps: float = 30.0,
        stall_timeout: float = 5.0,
    ) -> None:
        self._feed = ImageFeedSource(images, frames_per_image=frames_per_image)
        super().__init__(self._feed, max_fps=max_fps, stall_timeout=stall_timeout)

    def show(self, image: ImageLike) -> None:
        """Show this image now (a path or a BGR/grayscale uint8 array)."""
        self._feed.show(image)
