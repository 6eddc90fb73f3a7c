"""Signing key directories: the one place the contract touches files, so both sides agree on them.

A key directory holds `signing.key` (hex seed, mode 0600) and `public.key` (hex). Central signs
with the first; gates trust the second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from protocol.epass import key_id_of
from protocol.fsmodes import FILE_MODE, private_dir, write_private

SIGNING_FILE = "signing.key"
PUBLIC_FILE = "public.key"


class KeyFileError(Exception):
    """A key directory is missing, unreadable or holds a malformed key."""


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key a gate accepts passes from."""

    key_id: str
    public_key: str

    def verify_key(self) -> VerifyKey:
        return VerifyKey(bytes.fromhex(self.public_key))


def init_key_dir(directory: Path) -> str:
    """Create a new key pair in directory (refusing to overwrite one) and return its key id."""
    private_dir(directory, tighten=True)
    secret = directory / SIGNING_FILE
    if secret.exists():
        raise KeyFileError(f"{secret} already exists; refusing to overwrite a signing key")
    key = SigningKey.generate()
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(bytes(key).hex() + "\n")
    write_private(directory / PUBLIC_FILE, bytes(key.verify_key).hex() + "\n")
    return key_id_of(key.verify_key).hex()


def load_signing_key(directory: Path) -> SigningKey:
    try:
        return SigningKey(bytes.fromhex((directory / SIGNING_FILE).read_text().strip()))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot load signing key from {directory}: {exc}") from exc


def load_public_key(directory: Path) -> TrustedKey:
    try:
        raw = bytes.fromhex((directory / PUBLIC_FILE).read_text().strip())
        vk = VerifyKey(raw)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot load public key from {directory}: {exc}") from exc
    return TrustedKey(key_id=key_id_of(vk).hex(), public_key=raw.hex())
