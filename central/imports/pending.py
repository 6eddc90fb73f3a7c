"""Previewed imports waiting for their confirm, kept in memory for a while.

In memory, not in the database: an upload nobody confirms must leave nothing behind. The cost
is that a confirm must reach the replica that made the preview (or it answers 404: upload
again), and a restart forgets pending previews.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from central.imports.plan import CheckedRow

TTL = timedelta(minutes=30)
MAX_PENDING = 16


@dataclass(frozen=True, slots=True)
class PendingImport:
    import_id: str
    owner: str
    expires_at: datetime
    sha256: str
    rows: list[CheckedRow]
    signature: list[tuple[object, ...]]


class PendingImports:
    """Thread-safe: routes run in the threadpool. Oldest are dropped past MAX_PENDING."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, PendingImport] = OrderedDict()

    @staticmethod
    def new_id() -> str:
        return os.urandom(12).hex()

    def put(self, item: PendingImport, now: datetime) -> None:
        with self._lock:
            self._drop_expired(now)
            self._items[item.import_id] = item
            while len(self._items) > MAX_PENDING:
                self._items.popitem(last=False)

    def take(self, import_id: str, owner: str, now: datetime) -> PendingImport | None:
        """Remove and return the caller's unexpired import, so it is confirmed at most once."""
        with self._lock:
            self._drop_expired(now)
            item = self._items.get(import_id)
            if item is None or item.owner != owner:
                return None
            return self._items.pop(import_id)

    def _drop_expired(self, now: datetime) -> None:
        for key in [k for k, v in self._items.items() if v.expires_at <= now]:
            del self._items[key]
