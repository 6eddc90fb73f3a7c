"""What the bridge does with central's deltas and commands, once their payloads are validated."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from edge.bridge_ports import GateControl, HintSink
from edge.cache import GateCache
from edge.journal import Journal
from protocol.messages import Command, DetailValue, EventType, SyncDelta

log = logging.getLogger(__name__)


def apply_delta(cache: GateCache, hints: HintSink | None, delta: SyncDelta) -> None:
    """Revocations into the store; the delta's phone passes to the pre-verifier, if any."""
    cache.apply_delta(
        delta.version,
        delta.snapshot,
        [(r.pass_id, r.reason, None if r.until is None else float(r.until)) for r in delta.revoked],
        delta.unrevoked,
    )
    if delta.passes and hints is not None:
        hints.offer(delta.passes)  # verified on the pre-verifier's thread, not this one
    log.info(
        "sync: cache version %d (%d revoked, %d unrevoked, %d passes%s)",
        delta.version, len(delta.revoked), len(delta.unrevoked), len(delta.passes),
        ", snapshot" if delta.snapshot else "",
    )  # fmt: skip


def run_command(command: Command, cache: GateCache, journal: Journal, control: GateControl) -> None:
    """A remote open, once per command id, journalled; its own thread, so it never raises."""
    try:
        if not cache.record_command(command.id, "received"):
            log.info("command %s already seen; not running it again", command.id)
            return
        details: dict[str, DetailValue] = {"command_id": command.id}
        if command.issued_by:
            details["issued_by"] = command.issued_by
        if datetime.now(UTC) >= command.expires_at:
            journal.append(EventType.REMOTE_OPEN, granted=False, reason="expired", details=details)
            return
        opened = control.remote_open()
        reason = "ok" if opened else "unlock_failure"
        journal.append(EventType.REMOTE_OPEN, granted=opened, reason=reason, details=details)
    except Exception:
        log.exception("command %s failed", command.id)
