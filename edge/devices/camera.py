"""A camera as a PassReader: OpenCV capture in a thread, QR decoding at a bounded frame rate.

Sources: a device index (0 or "0"), a /dev/video* path, an rtsp:// or http(s):// URL, a video
file (played at max_fps, then it stalls), or an image file or directory of images (shown
through ImageFeedSource, each image for a few frames, then blank frames for ever).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.devices.base import DeviceError
from edge.devices.image_feed import IMAGE_SUFFIXES, Frame, ImageFeedSource
from edge.devices.qr_decode import decode_frame

log = logging.getLogger(__name__)

_URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
_OPEN_TIMEOUT_MS = 10_000
_READ_TIMEOUT_MS = 5_000
# What a broken camera or stream makes the capture thread raise; anything else is our bug.
_CAPTURE_ERRORS = (DeviceError, OSError, cv2.error)


class FrameSource(Protocol):
    """Where frames come from; used only from the capture thread once it has started."""

    live: bool
    """True when grab() blocks until the next frame (a camera), False for files and feeds."""

    def grab(self) -> bool:
        """Advance to the next frame; False when none came."""
        ...

    def retrieve(self) -> Frame | None:
        """Decode the frame grab() advanced to."""
        ...

    def release(self) -> None: ...


class CaptureSource:
    """A FrameSource on cv2.VideoCapture."""

    def __init__(self, spec: int | str) -> None:
        self.spec = spec
        self.live = isinstance(spec, int) or spec.startswith(("/dev/video", *_URL_SCHEMES))
        if isinstance(spec, str) and spec.startswith(_URL_SCHEMES):
            # Without these a dead stream blocks the capture thread for FFmpeg's default 30 s.
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                _OPEN_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                _READ_TIMEOUT_MS,
            ]
            self._capture = cv2.VideoCapture(spec, cv2.CAP_ANY, params)
        else:
            self._capture = cv2.VideoCapture(spec)
        if not self._capture.isOpened():
            self._capture.release()
            raise DeviceError(f"cannot open camera source {spec!r} (OpenCV could not open it)")
        if self.live:
            # Keep the driver's queue short so the frame we decode is the one just taken.
            self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def grab(self) -> bool:
        """Advance to the next frame; False when none came."""
        return bool(self._capture.grab())

    def retrieve(self) -> Frame | None:
        """Decode the frame grab() advanced to."""
        ok, frame = self._capture.retrieve()
        return np.asarray(frame, np.uint8) if ok and frame is not None else None

    def release(self) -> None:
        """Close the capture."""
        self._capture.release()


def open_source(source: int | str | Path) -> FrameSource:
    """Open a frame source from a config value, raising DeviceError with the reason if it fails."""
    if isinstance(source, int):
        return CaptureSource(source)
    text = str(source).strip()
    if text.isdigit():
        return CaptureSource(int(text))
    if text.startswith(("/dev/video", *_URL_SCHEMES)):
        return CaptureSource(text)
    path = Path(text)
    if not path.exists():
        raise DeviceError(f"camera source {text!r} is not a device, URL or existing file")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFeedSource(path)
    return CaptureSource(text)


class RateLimit:
    """True at most `per_second` times a second (never for 0): for the decoder's dear looks."""

    def __init__(self, per_second: float) -> None:
        self._period = 1.0 / per_second if per_second > 0 else None
        self._next = 0.0

    def due(self, now: float | None = None) -> bool:
        if self._period is None:
            return False
        now = time.monotonic() if now is None else now
        if now < self._next:
            return False
        self._next = now + self._period
        return True


class CameraReader:
    """Read pass QR codes from a camera; keeps the latest frame for snapshots.

    The source is opened at once (DeviceError if it cannot be). A FrameSource instance is
    used as it is, also by open(). read() raises DeviceError once no frame came for
    stall_timeout seconds; the caller then closes and reopens.
    """

    def __init__(
        self,
        source: int | str | Path | FrameSource,
        *,
        max_fps: float = 25.0,
        stall_timeout: float = 5.0,
        blind_fps: float = 6.0,
        soft_fps: float = 2.0,
    ) -> None:
        if max_fps <= 0 or stall_timeout <= 0 or blind_fps < 0 or soft_fps < 0:
            raise ValueError(
                "max_fps and stall_timeout must be positive, blind_fps and soft_fps >= 0"
            )
        self._spec = source
        self._period = 1.0 / max_fps
        # The whole-frame second looks cost ~4 ms; with nobody in front of the camera they run
        # at most blind_fps times a second, so an idle gate stays cheap on a Pi.
        self._blind = RateLimit(blind_fps)
        # The soft last look (20-375 ms a frame: qr_decode.SOFT_DEADLINE_MS) runs on a frame
        # that shows a code nothing else read, at most soft_fps times a second; after it the
        # reader takes the newest frame, so the next, sharper one is never far behind.
        self._soft = RateLimit(soft_fps)
        self._stall_timeout = stall_timeout
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_decode_ms: float | None = None
        self.decode_errors = 0
        self.open()

    def open(self) -> None:
        """(Re)open the source and start capturing; raises DeviceError when it cannot be opened."""
        self._shutdown()
        spec = self._spec
        self._source = open_source(spec) if isinstance(spec, int | str | Path) else spec
        self._frame: Frame | None = None
        self._seq = 0
        self._decoded_seq = 0
        self._last_frame_at = time.monotonic()
        self._failure: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._capture_loop, name="camera", daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> str | None:
        """Return the next decoded QR text, or None when none was seen within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._next_frame(deadline)
            if frame is None:
                return None
            started = time.perf_counter()
            text = decode_frame(
                frame, self._decode_failed, blind=self._blind.due(), soft=self._soft.due
            )
            if text is not None:
                self.last_decode_ms = (time.perf_counter() - started) * 1000.0
                return text

    def _decode_failed(self, exc: Exception) -> None:
        # Counted for the gate's status; logged once, as a bad stream fails on every frame.
        if not self.decode_errors:
            log.warning("QR decoder failed on a frame from %r: %s", self._spec, exc)
        self.decode_errors += 1

    @property
    def frames(self) -> int:
        """Frames captured since the source was (re)opened; `menjin gate check` times it."""
        with self._changed:
            return self._seq

    def last_frame(self) -> Frame | None:
        """Return a copy of the latest frame (for a snapshot), or None before the first one."""
        with self._changed:
            return None if self._frame is None else self._frame.copy()

    def close(self) -> None:
        """Stop capturing and release the source."""
        self._shutdown()

    def _shutdown(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():
                log.warning("camera thread did not stop within 2 s; it releases the source later")
            self._thread = None

    def _next_frame(self, deadline: float) -> Frame | None:
        with self._changed:
            while True:
                if self._stop.is_set():
                    raise DeviceError("camera is closed")
                if isinstance(self._failure, _CAPTURE_ERRORS):
                    raise DeviceError(f"camera capture failed: {self._failure}")
                if self._failure is not None:
                    raise self._failure  # a bug in our capture code: not a camera fault
                if self._seq != self._decoded_seq and self._frame is not None:
                    self._decoded_seq = self._seq
                    return self._frame
                now = time.monotonic()
                silent = now - self._last_frame_at
                if silent > self._stall_timeout:
                    raise DeviceError(
                        f"camera {self._spec!r} delivered no frame for {silent:.1f} s"
                    )
                if now >= deadline:
                    return None
                wait = min(deadline - now, self._stall_timeout - silent) + 0.001
                self._changed.wait(wait)

    def _capture_loop(self) -> None:
        source, stop = self._source, self._stop
        try:
            self._capture_until(source, stop)
        except Exception as exc:
            log.exception("camera capture thread failed")
            with self._changed:
                if not stop.is_set():
                    self._failure = exc
                self._changed.notify_all()
        finally:
            source.release()

    def _capture_until(self, source: FrameSource, stop: threading.Event) -> None:
        next_due = 0.0
        while not stop.is_set():
            if not source.live:
                # A file or feed has no clock of its own: pace it at max_fps.
                stop.wait(max(0.0, next_due - time.monotonic()))
            if not source.grab():
                stop.wait(min(self._period, 0.1))
                continue
            now = time.monotonic()
            # A live camera is drained at its own rate so no stale frame waits in its queue,
            # but frames are retrieved (converted to images) at most max_fps times a second.
            if now < next_due:
                continue
            frame = source.retrieve()
            if frame is None:
                continue
            next_due = now + self._period
            with self._changed:
                if stop.is_set():
                    return  # closed or reopened meanwhile: this frame belongs to nobody
                self._frame, self._seq, self._last_frame_at = frame, self._seq + 1, now
                self._changed.notify_all()
