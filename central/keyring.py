"""Central's signing keys: pass keys and policy keys, each `next` -> `active` -> `previous` ->
`retired`.

A `next` key is trusted by gates but not used to sign; `activate` makes it the one central signs
with (the active one before it becomes `previous`, still trusted); `retire` removes a key from
every gate's trust. The private halves stay in key directories (0600), the table holds states.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey
from sqlalchemy import Connection, Row, select, update

from central.config import CentralSettings
from central.store.tables import signing_keys
from protocol.keyfiles import KeyFileError, init_key_dir, load_public_key, load_signing_key
from protocol.policy import PublicKey


class KeyPurpose(StrEnum):
    PASS = "pass"  # noqa: S105 - signs passes; gates trust it through trusted_keys
    POLICY = "policy"  # signs policy documents; gates pin it


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    PREVIOUS = "previous"
    RETIRED = "retired"


TRUSTED_STATES = (KeyState.NEXT, KeyState.ACTIVE, KeyState.PREVIOUS)


class KeyringError(Exception):
    """A key transition that is not allowed (e.g. retiring the active key)."""


def _insert(
    conn: Connection, directory: Path, purpose: KeyPurpose, state: KeyState, now: datetime
) -> str:
    public = load_public_key(directory)
    exists = conn.execute(
        select(signing_keys.c.key_id).where(signing_keys.c.key_id == public.key_id)
    )
    if exists.first() is None:
        conn.execute(
            signing_keys.insert().values(
                key_id=public.key_id, purpose=purpose.value, public_key=public.public_key,
                state=state.value, key_dir=str(directory), created_at=now,
                activated_at=now if state is KeyState.ACTIVE else None,
            )
        )  # fmt: skip
    return public.key_id


def bootstrap(conn: Connection, settings: CentralSettings, now: datetime) -> None:
    """First start: the configured key directories become the keyring's first keys."""
    if keys(conn, KeyPurpose.PASS) == []:
        _insert(conn, settings.signing_dir(), KeyPurpose.PASS, KeyState.ACTIVE, now)
        for extra in settings.keys.trusted:
            _insert(conn, settings.resolve(extra), KeyPurpose.PASS, KeyState.PREVIOUS, now)
    if keys(conn, KeyPurpose.POLICY) == []:
        directory = settings.policy_dir()
        if not (directory / "public.key").exists():
            init_key_dir(directory)
        _insert(conn, directory, KeyPurpose.POLICY, KeyState.ACTIVE, now)


def keys(conn: Connection, purpose: KeyPurpose | None = None) -> list[Row[Any]]:
    query = select(signing_keys).order_by(signing_keys.c.created_at, signing_keys.c.key_id)
    if purpose is not None:
        query = query.where(signing_keys.c.purpose == purpose.value)
    return list(conn.execute(query))


def get_key(conn: Connection, key_id: str) -> Row[Any] | None:
    return conn.execute(select(signing_keys).where(signing_keys.c.key_id == key_id)).first()


def new_key(conn: Connection, settings: CentralSettings, purpose: KeyPurpose, now: datetime) -> str:
    """Make a key pair in the keyring directory; state `next`."""
    staging = settings.ring_dir() / f"new-{uuid.uuid4().hex}"
    key_id = init_key_dir(staging)
    final = settings.ring_dir() / f"{purpose.value}-{key_id}"
    staging.rename(final)
    return _insert(conn, final, purpose, KeyState.NEXT, now)


def _set_state(conn: Connection, key_id: str, state: KeyState, **values: Any) -> None:
    conn.execute(
        update(signing_keys)
        .where(signing_keys.c.key_id == key_id)
        .values(state=state.value, **values)
    )


def activate(conn: Connection, key_id: str, now: datetime) -> None:
    """Sign with this key from now on; the active key before it stays trusted as `previous`."""
    row = _existing(conn, key_id)
    if row.state not in (KeyState.NEXT, KeyState.PREVIOUS):
        raise KeyringError(f"key {key_id} is {row.state}; only a next or previous key activates")
    for other in keys(conn, KeyPurpose(row.purpose)):
        if other.state == KeyState.ACTIVE:
            _set_state(conn, other.key_id, KeyState.PREVIOUS)
    _set_state(conn, key_id, KeyState.ACTIVE, activated_at=now)


def retire(conn: Connection, key_id: str, now: datetime) -> None:
    """Stop trusting this key anywhere; the active key cannot be retired (activate another)."""
    row = _existing(conn, key_id)
    if row.state == KeyState.ACTIVE:
        raise KeyringError(f"key {key_id} is the active key; activate another one first")
    _set_state(conn, key_id, KeyState.RETIRED, retired_at=now)


def _existing(conn: Connection, key_id: str) -> Row[Any]:
    row = get_key(conn, key_id)
    if row is None:
        raise LookupError(f"no key {key_id}")
    return row


def trusted(conn: Connection, purpose: KeyPurpose) -> list[PublicKey]:
    """The public keys gates should trust for this purpose: every key not retired."""
    return [
        PublicKey(key_id=r.key_id, public_key=r.public_key)
        for r in keys(conn, purpose)
        if r.state in TRUSTED_STATES
    ]


def active_signing_key(conn: Connection, purpose: KeyPurpose) -> SigningKey:
    """The private key central signs with; KeyFileError when there is none or it is unreadable."""
    for row in keys(conn, purpose):
        if row.state == KeyState.ACTIVE:
            if row.key_dir is None:
                break
            return load_signing_key(Path(row.key_dir))
    raise KeyFileError(f"no active {purpose.value} key with a private half on this central")
