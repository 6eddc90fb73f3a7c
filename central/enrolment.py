"""Binding a pass to a phone: the pass data from central's row, and the version 2 text."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from nacl.signing import SigningKey
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Row

from central.store import enrol_store
from central.views import aware
from protocol.epass import HolderKind, PassData, parse_hours, parse_weekdays
from protocol.epass_bound import encode_bound_pass
from protocol.livecode import DeviceAlg, DeviceKey

LINK_TTL = timedelta(days=3)
# The larger phone key (P-256; this is its base point): a pass that fits with it fits with either.
_WIDEST_KEY = DeviceKey(
    DeviceAlg.P256,
    bytes.fromhex("036b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
)


class DeviceKeyIn(BaseModel):
    """The phone's public key as WebCrypto exports it, base64url without padding."""

    model_config = ConfigDict(extra="forbid")

    alg: DeviceAlg
    public_key: str = Field(min_length=43, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")

    def device_key(self) -> DeviceKey:
        """The key as the pass carries it; ValueError when it is not a usable key of `alg`."""
        try:
            raw = base64.urlsafe_b64decode(self.public_key + "=" * (-len(self.public_key) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("public_key is not base64url") from exc
        key = DeviceKey(self.alg, raw)
        key.check()
        return key


def pass_data(row: Row[Any]) -> PassData:
    """What central signed for a stored pass, rebuilt from its row."""
    return PassData(
        pass_id=bytes.fromhex(row.pass_id),
        site=row.site,
        kind=HolderKind(row.kind),
        valid_from=int(aware(row.valid_from).timestamp()),
        valid_until=int(aware(row.valid_until).timestamp()),
        display_name=row.display_name,
        gates=tuple(row.gates),
        hours=parse_hours(row.hours) if row.hours else None,
        weekdays=parse_weekdays(row.days or ""),
        max_uses=row.max_uses,
    )


def check_fits(data: PassData, key: SigningKey) -> None:
    """PassTooLargeError (a ValueError) now, at issue, if no phone's live code would fit."""
    encode_bound_pass(data, _WIDEST_KEY, key)


def bind(row: Row[Any], device: DeviceKey, key: SigningKey) -> str:
    """The version 2 text of a stored pass, bound to this phone."""
    return encode_bound_pass(pass_data(row), device, key)


def enrol_link(conn: Connection, request: Request, pass_id: str, by: str, now: datetime) -> str:
    """A new one-time link for the pass's phone (revoking any earlier unused one)."""
    token = enrol_store.create_link(conn, pass_id, now, LINK_TTL, by)
    return f"{request.base_url}phone/enrol/{token}"
