"""The bounded queue between paho's network thread and central's store loop.

When it is full, `put` blocks the network thread: paho stops reading its socket, TCP fills and
the broker holds the rest, so a burst costs broker buffers, not central memory. If the store
loop is stuck for longer than `block_s`, the message is shed instead. That loses nothing:
central acks only what it stored, so the gate sends the message again.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from central.ingest_check import Incoming


class Inbox:
    """FIFO bounded by message count and payload bytes; one message always fits."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._items: deque[Incoming] = deque()
        self._bytes = 0
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _full(self, size: int) -> bool:
        if not self._items:
            return False
        return len(self._items) >= self.max_messages or self._bytes + size > self.max_bytes

    def put(self, item: Incoming, block_s: float) -> bool:
        """Queue an item, waiting up to block_s for room; False: it was shed."""
        size = len(item.payload)
        deadline = time.monotonic() + block_s
        with self._cond:
            while self._full(size):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self._items.append(item)
            self._bytes += size
            self._cond.notify_all()
        return True

    def take(
        self, limit: int, max_bytes: int, timeout: float, fill_s: float = 0.0
    ) -> list[Incoming]:
        """Up to `limit` items and `max_bytes` (but at least one): wait up to timeout for one,
        then up to fill_s for more."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                return []
            if fill_s > 0:
                self._cond.wait_for(lambda: len(self._items) >= limit, fill_s)
            out: list[Incoming] = []
            size = 0
            while self._items and len(out) < limit:
                nxt = len(self._items[0].payload)
                if out and size + nxt > max_bytes:
                    break
                out.append(self._items.popleft())
                size += nxt
            self._bytes -= size
            self._cond.notify_all()
        return out
