"""Replacing a pass (re-issue, a re-imported row whose validity changed): sign anew, revoke old."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from nacl.signing import SigningKey
from sqlalchemy import Connection, Row

from central.auth import Principal
from central.ingest import Ingest
from central.pass_signing import PassCreate, sign_pass
from central.store import passes_store, sync_store
from central.views import aware

log = logging.getLogger(__name__)


def body_of(row: Row[Any], **changes: Any) -> PassCreate:
    """The PassCreate that would issue this stored pass again (with changes)."""
    # Only the stored columns: a re-issue is a printed pass (device_bound is False; a phone
    # enrols a new device-bound pass instead).
    fields = {name: getattr(row, name) for name in PassCreate.model_fields if name in row._mapping}
    fields.update(valid_from=aware(row.valid_from), valid_until=aware(row.valid_until))
    return PassCreate.model_validate({**fields, **changes})


def issue(conn: Connection, body: PassCreate, key: SigningKey, user: Principal,
          now: datetime) -> dict[str, Any]:  # fmt: skip
    """Sign and store one pass; ValueError when it would not fit a QR code."""
    stored = sign_pass(body, key, user, now)
    passes_store.insert_passes(conn, [stored])
    return stored


def revoke_replaced(conn: Connection, old: Row[Any], reason: str, user: Principal,
                    now: datetime) -> int:  # fmt: skip
    """Revoke the pass a new one replaces; returns the revocation list version."""
    until = int(aware(old.valid_until).timestamp())
    return sync_store.revoke(conn, old.pass_id, reason, now, until=until, by=user.name)


def announce(ingest: Ingest | None, sites_versions: dict[str, int]) -> None:
    """After commit: tell each site's gates the list's new version."""
    if ingest is None:
        return
    for site, version in sites_versions.items():
        try:
            ingest.announce(site, version)
        except Exception:
            # Committed already; gates catch up at their next sync (each reconnect asks).
            log.warning("could not announce revocation version %s", version, exc_info=True)
