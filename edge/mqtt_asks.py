"""When the gate asks central for its revocation delta and its policy, and whether it may ask for
its site's phone passes (pass hints) on this connection.

A central from before `SyncRequest.passes` drops a request that carries the field (unknown fields
are forbidden) without a word, so silence is the only sign of one: a request asking for passes
that gets no delta within `answer_s` while connected makes the gate ask without them for the
rest of that connection. Revocations never wait longer than that for hints.
"""

from __future__ import annotations

import logging
import threading

from protocol.messages import SyncRequest

log = logging.getLogger(__name__)
HINTS_ANSWER_S = 30.0  # how long a request for passes may go unanswered, at most `refresh_s`


class SyncAsks:
    """The refresh timer of the sync and policy requests, and this connection's pass-hints state.

    Called from the network thread (connect, delta, central's status) and the sender's; `now` is
    `time.monotonic()`.
    """

    def __init__(self, refresh_s: float, now: float) -> None:
        self.refresh_s = refresh_s
        self.answer_s = min(HINTS_ANSWER_S, refresh_s)
        self.next_refresh = now + refresh_s
        self.hints_unsupported = 0  # times a request for passes went unanswered and was given up
        self._passes = True
        self._waiting_since: float | None = None  # the first unanswered request for passes
        self._central_offline = False  # the last status heard from central said offline
        self._lock = threading.Lock()

    def connected(self, now: float) -> None:
        """A new connection: ask with passes again (central may have been updated meanwhile)."""
        with self._lock:
            self._passes, self._waiting_since = True, None
            self.next_refresh = now + self.refresh_s

    def central_status(self, online: bool) -> None:
        """Central's status (every heartbeat says online): after an offline, central came back
        while this gate stayed connected, and may be a newer one."""
        with self._lock:
            if online and self._central_offline:
                self._passes = True
            self._central_offline = not online

    def sync_request(self, since: int, now: float) -> str:
        """The payload of a SyncRequest; without passes it leaves the field out, as the old
        central knew the message (`"passes": false` would be refused just the same)."""
        with self._lock:
            if self._passes and self._waiting_since is None:
                self._waiting_since = now
            request = SyncRequest(since=since, passes=self._passes)
        return request.model_dump_json()

    def answered(self) -> None:
        """A delta arrived: central answers what this connection asks."""
        with self._lock:
            self._waiting_since = None

    def gave_up_on_passes(self, now: float) -> bool:
        """True once a request for passes has gone unanswered for `answer_s`: ask again now,
        without them, as this connection will from here on."""
        with self._lock:
            if self._waiting_since is None or now < self._waiting_since + self.answer_s:
                return False
            self._passes, self._waiting_since = False, None
            self.hints_unsupported += 1
            first = self.hints_unsupported == 1
        (log.warning if first else log.info)(
            "central did not answer a sync request asking for pass hints within %.0f s: it does"
            " not take them (older than the gate?); asking without them on this connection, so"
            " revocations still arrive (pass_hints_unsupported)",
            self.answer_s,
        )
        return True

    def refresh_due(self, now: float) -> bool:
        """True every `refresh_s`: ask for both again, in case an answer was lost."""
        with self._lock:
            if now < self.next_refresh:
                return False
            self.next_refresh = now + self.refresh_s
            return True

    def next_due(self) -> float:
        """The monotonic time at which one of the two checks above next says yes."""
        with self._lock:
            if self._waiting_since is None:
                return self.next_refresh
            return min(self.next_refresh, self._waiting_since + self.answer_s)
