"""What a form post shows once on the page it redirects to (post/redirect/get), kept server-side.

A device-bound pass's enrolment link is shown once and stored only as a hash, so it cannot go
in the redirect's URL (browser history, proxy logs) nor be read again. The session cookie holds
only a token (central/console/session.py, nothing stored per session), so the link waits here,
in memory, under the session's token hash and a random nonce that the redirect carries; reading
it removes it. Like the import previews (central/imports/pending.py), it must be read on the
replica that stored it and a restart forgets it: then the page shows no link, and the admin
makes a fresh one with "renew".
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from datetime import datetime, timedelta

TTL = timedelta(minutes=10)
MAX_HELD = 256


class Flashes:
    """Thread-safe: routes run in the threadpool. Oldest are dropped past MAX_HELD."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: OrderedDict[tuple[str, str, str], tuple[datetime, str]] = OrderedDict()

    def put(self, session_token: str, scope: str, value: str, now: datetime) -> str:
        """Keep `value` for this session and page (`scope`); the nonce to take it back with."""
        nonce = secrets.token_urlsafe(12)
        with self._lock:
            self._held[(_owner(session_token), scope, nonce)] = (now + TTL, value)
            while len(self._held) > MAX_HELD:
                self._held.popitem(last=False)
        return nonce

    def take(self, session_token: str, scope: str, nonce: str, now: datetime) -> str | None:
        """What this session kept for `scope` under `nonce`, once; None when taken, expired or
        not its own."""
        with self._lock:
            for key in [k for k, (until, _) in self._held.items() if until <= now]:
                del self._held[key]
            found = self._held.pop((_owner(session_token), scope, nonce), None)
        return None if found is None else found[1]


def _owner(session_token: str) -> str:
    return hashlib.sha256(session_token.encode()).hexdigest()
