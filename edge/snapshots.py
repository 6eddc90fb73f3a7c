"""Snapshot JPEGs of notable moments, written off the hot path into a bounded directory."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from protocol.fsmodes import private_dir, write_private

log = logging.getLogger(__name__)

Frame = NDArray[np.uint8]


class SnapshotStore:
    """Names a snapshot at once; encodes and writes it in a worker; prunes the oldest files."""

    def __init__(
        self,
        directory: Path,
        max_files: int = 500,
        max_bytes: int = 100 * 2**20,
        on_error: Callable[[str], None] | None = None,
        max_age_s: float | None = None,
    ) -> None:
        self.directory = directory
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.saved = 0
        self.failed = 0
        self._on_error = on_error
        self._queue: queue.Queue[tuple[str, Frame] | None] = queue.Queue(maxsize=32)
        self._thread = threading.Thread(target=self._work, name="snapshots", daemon=True)
        self._thread.start()

    def request(self, frame: Frame | None) -> str | None:
        """Queue a frame; return the file name it will have, or None when there is nothing."""
        if frame is None:
            return None
        name = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:8]}.jpg"
        try:
            self._queue.put_nowait((name, frame))
        except queue.Full:
            self.failed += 1
            return None
        return name

    def path(self, name: str) -> Path:
        return self.directory / name

    def prune_expired(self, now: float | None = None) -> int:
        """Delete snapshots older than max_age_s, uploaded or not; returns how many went."""
        if self.max_age_s is None or not self.directory.is_dir():
            return 0
        cutoff = (time.time() if now is None else now) - self.max_age_s
        expired = [f for f in self.directory.glob("*.jpg") if f.stat().st_mtime < cutoff]
        for f in expired:
            f.unlink(missing_ok=True)
        return len(expired)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            name, frame = item
            try:
                self._write(name, frame)
                self.saved += 1
            except Exception as exc:  # a full or read-only card must not stop the gate
                self.failed += 1
                log.warning("snapshot %s not saved: %s", name, exc)
                if self._on_error is not None:
                    self._on_error(f"snapshot {name} not saved: {exc}")

    def _write(self, name: str, frame: Frame) -> None:
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            raise ValueError("JPEG encoding failed")
        private_dir(self.directory, tighten=True)  # faces: the gate's user only
        self._prune(incoming=len(jpeg))
        tmp = self.directory / f".{name}.tmp"
        write_private(tmp, jpeg.tobytes())
        tmp.rename(self.directory / name)

    def _prune(self, incoming: int) -> None:
        files = sorted(self.directory.glob("*.jpg"))
        sizes = [f.stat().st_size for f in files]
        total = sum(sizes) + incoming
        while files and (len(files) >= self.max_files or total > self.max_bytes):
            total -= sizes.pop(0)
            files.pop(0).unlink(missing_ok=True)
