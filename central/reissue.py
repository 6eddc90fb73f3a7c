"""Guided re-issue: the same passes again, signed by the active pass key; the old ones revoked.

After a key leaks, every pass it signed must be replaced before the key is retired; this signs
each one anew exactly as `POST /api/v1/passes` would (same holder, times, gates, hours) and
revokes the old pass, so the compound prints new cards in one afternoon.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Row

from central import keyring
from central.auth import Principal
from central.keyring import KeyPurpose
from central.routes.passes import PassCreate, _sign
from central.store import passes_store, sync_store
from central.views import aware
from protocol.epass import key_id_of

_COPIED = ("site", "holder", "kind", "gates", "hours", "days", "max_uses", "unit", "phone")


class ReissuedPass(BaseModel):
    old_pass_id: str
    new_pass_id: str
    text: str


def _again(row: Row[Any]) -> PassCreate:
    fields = {name: getattr(row, name) for name in _COPIED}
    return PassCreate(
        **fields, valid_from=aware(row.valid_from), valid_until=aware(row.valid_until)
    )


def reissue_rows(
    conn: Connection, rows: list[Row[Any]], user: Principal, now: datetime
) -> tuple[list[ReissuedPass], str, dict[str, int]]:
    """Re-sign these passes; returns what was issued, the signer and each site's new revocation
    list version (to announce after commit)."""
    key = keyring.active_signing_key(conn, KeyPurpose.PASS)
    done: list[ReissuedPass] = []
    versions: dict[str, int] = {}
    for row in rows:
        stored = _sign(_again(row), key, user, now)
        passes_store.insert_passes(conn, [stored])
        until = int(aware(row.valid_until).timestamp())
        versions[row.site] = sync_store.revoke(
            conn, row.pass_id, f"reissued as {stored['pass_id']}", now, until=until, by=user.name
        )
        done.append(
            ReissuedPass(
                old_pass_id=row.pass_id, new_pass_id=stored["pass_id"], text=stored["text"]
            )
        )
    return done, key_id_of(key.verify_key).hex(), versions
