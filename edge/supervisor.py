"""Keep a device open: reopen it with backoff after a fault, and report each fault episode once.

A device error (the port vanished, a timeout, a DeviceError) is the hardware's doing and is
retried for ever. Anything else a driver raises is a bug in our code: retrying would loop on
it, so the device is stopped, journalled as a driver error and left down until a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from edge.devices.base import DeviceError
from edge.devices.reconnect import Backoff

log = logging.getLogger(__name__)


class Closable(Protocol):
    def close(self) -> None: ...


D = TypeVar("D", bound=Closable)

# What a driver constructor or call raises when the hardware is gone, silent or talks
# nonsense; serial.SerialException and TimeoutError are OSErrors. Nothing else is a device fault.
DEVICE_ERRORS = (DeviceError, OSError)


class Supervised(Generic[D]):
    """One device, opened in the background; `get()` is None while it is down."""

    def __init__(
        self,
        name: str,
        factory: Callable[[], D],
        on_fault: Callable[[str, str], None],
        stop: threading.Event,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self.faults = 0
        self.reconnects = 0
        self.driver_errors = 0
        self.stopped = False
        self._factory = factory
        self._on_fault = on_fault
        self._stop = stop
        self._backoff = backoff or Backoff(min_s=0.2, max_s=10.0)
        self._device: D | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()

    def start(self, wait_s: float = 0.0) -> None:
        """Open the device in the background; wait up to wait_s for the first open."""
        self._spawn()
        self._connected.wait(wait_s)

    def get(self) -> D | None:
        return self._device

    @property
    def up(self) -> bool:
        return self._device is not None

    def fault(self, exc: Exception) -> None:
        """A call on the device raised: reopen after a device error, stop after a driver bug."""
        with self._lock:
            device, self._device = self._device, None
            self._connected.clear()
        if device is None:
            return
        self._close_quietly(device)
        if not isinstance(exc, DEVICE_ERRORS):
            self._driver_error(exc)
            return
        self._report(f"{type(exc).__name__}: {exc}")
        self._spawn()

    def close(self) -> None:
        with self._lock:
            device, self._device = self._device, None
        if device is not None:
            self._close_quietly(device)
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _driver_error(self, exc: Exception) -> None:
        """Stop the device for good: the same bug would come back on every reopen."""
        self.stopped = True
        self.driver_errors += 1
        log.critical(
            "device %s stopped: driver error %s: %s; it stays down until the agent restarts",
            self.name, type(exc).__name__, exc, exc_info=exc,
        )  # fmt: skip
        self._report(f"driver error: {type(exc).__name__}: {exc}")

    def _report(self, message: str) -> None:
        self.faults += 1
        log.warning("device %s fault: %s", self.name, message)
        try:
            self._on_fault(self.name, message)
        except Exception:
            log.exception("fault handler for %s failed", self.name)

    def _spawn(self) -> None:
        with self._lock:
            if self.stopped or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._reopen_loop, name=f"open-{self.name}", daemon=True
            )
            self._thread.start()

    def _reopen_loop(self) -> None:
        reported = False
        while not self._stop.is_set():
            try:
                device = self._factory()
            except DEVICE_ERRORS as exc:
                if not reported:  # one fault per episode, not one per retry
                    self._report(f"cannot open: {exc}")
                    reported = True
                if not self._backoff.wait(self._stop):
                    return
                continue
            except Exception as exc:
                self._driver_error(exc)
                return
            with self._lock:
                if self._stop.is_set():
                    self._close_quietly(device)
                    return
                self._device = device
                self._connected.set()
            self._backoff.reset()
            self.reconnects += 1
            log.info("device %s open", self.name)
            return

    @staticmethod
    def _close_quietly(device: Closable) -> None:
        try:
            device.close()
        except Exception as exc:  # a dying device may fail to close; it is gone either way
            log.debug("close failed: %s", exc)
