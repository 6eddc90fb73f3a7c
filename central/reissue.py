"""Guided re-issue of a key's passes: each signed again by the active pass key, the old revoked.

After a key leaks, every pass it signed must be replaced before the key is retired; this does
for each of them what `POST /api/v1/passes/{id}/reissue` does for one (central/pass_ops.py), so
the compound prints new cards in one afternoon.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Row

from central import keyring, pass_ops
from central.auth import Principal
from central.keyring import KeyPurpose
from protocol.epass import key_id_of


class ReissuedPass(BaseModel):
    old_pass_id: str
    new_pass_id: str
    text: str


def reissue_rows(
    conn: Connection, rows: list[Row[Any]], user: Principal, now: datetime
) -> tuple[list[ReissuedPass], str, dict[str, int]]:
    """Re-sign these passes; returns what was issued, the signer and each site's new revocation
    list version (to announce after commit)."""
    key = keyring.active_signing_key(conn, KeyPurpose.PASS)
    done: list[ReissuedPass] = []
    versions: dict[str, int] = {}
    for row in rows:
        stored = pass_ops.issue(conn, pass_ops.body_of(row), key, user, now)
        reason = f"reissued as {stored['pass_id']}"
        versions[row.site] = pass_ops.revoke_replaced(conn, row, reason, user, now)
        done.append(
            ReissuedPass(
                old_pass_id=row.pass_id, new_pass_id=stored["pass_id"], text=stored["text"]
            )
        )
    return done, key_id_of(key.verify_key).hex(), versions
