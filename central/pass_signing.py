"""A pass to issue: what an admin may ask for (`PassCreate`, its times in the office's zone
unless they carry an offset) and how central signs it (`sign_pass`). Shared by the passes
API, the CSV and sheet imports and re-issue; no HTTP here."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from nacl.signing import SigningKey
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from central.auth import Principal
from central.enrolment import check_fits
from protocol.epass import (
    ALL_DAYS,
    HolderKind,
    PassData,
    encode_pass,
    format_hours,
    format_weekdays,
    key_id_of,
    mask_name,
    parse_hours,
    parse_weekdays,
)
from protocol.timeparse import parse_when
from protocol.topics import valid_id

OFFICE_TZ = ZoneInfo("Asia/Shanghai")


def _parse_time(value: object) -> object:
    return parse_when(value, OFFICE_TZ) if isinstance(value, str) else value


def _to_utc(value: datetime) -> datetime:
    """UTC whole seconds, as the pass carries them (SQLite would also drop any offset)."""
    try:
        when = (value if value.tzinfo else value.replace(tzinfo=OFFICE_TZ)).astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted past the calendar's end
        when = datetime.min.replace(tzinfo=UTC)
    if not 0 <= when.timestamp() < 2**32:
        raise ValueError("must lie between 1970 and 2106")
    return when.replace(microsecond=0)


def _site_or_gate_id(value: str) -> str:
    if not valid_id(value):
        raise ValueError("use 1-48 letters, digits, '_', '.' or '-', starting with a letter/digit")
    return value


PassTime = Annotated[datetime, BeforeValidator(_parse_time), AfterValidator(_to_utc)]
SiteOrGateId = Annotated[str, AfterValidator(_site_or_gate_id)]


class PassCreate(BaseModel):
    """A pass to issue; times without an offset are Asia/Shanghai."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    site: SiteOrGateId
    holder: str = Field(min_length=1, max_length=120, description="Full name; masked in the pass.")
    kind: HolderKind
    valid_from: PassTime
    valid_until: PassTime = Field(description="Exclusive end; must be after valid_from.")
    gates: list[SiteOrGateId] = Field(default_factory=list, max_length=32, description="[]: all.")
    hours: str | None = Field(None, description="Daily window HH:MM-HH:MM; may cross midnight.")
    days: str | None = Field(None, description="Weekdays, e.g. 'mon,tue' or 'mon-fri'.")
    max_uses: int = Field(0, ge=0, le=0xFFFF, description="Uses per gate; 0 unlimited.")
    unit: str | None = Field(None, max_length=80, description="Building / unit / room.")
    phone: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9][0-9 -]{2,31}$")
    device_bound: bool = Field(
        False, description="Bind to the holder's phone: the response carries a one-time enrol_url."
    )

    @field_validator("holder")
    @classmethod
    def _name_only(cls, holder: str) -> str:
        holder = " ".join(holder.split())
        mask_name(holder)  # raises for phone/ID-like "names"
        return holder

    @field_validator("valid_until")
    @classmethod
    def _after_from(cls, until: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("valid_from")
        if start is not None and until <= start:
            raise ValueError("valid_until must be after valid_from")
        return until

    @field_validator("hours")
    @classmethod
    def _hours(cls, hours: str | None) -> str | None:
        return format_hours(parse_hours(hours)) if hours else None

    @field_validator("days")
    @classmethod
    def _days(cls, days: str | None) -> str | None:
        mask = parse_weekdays(days or "")
        return None if mask == ALL_DAYS else format_weekdays(mask)


def sign_pass(body: PassCreate, key: SigningKey, user: Principal, now: datetime) -> dict[str, Any]:
    """Sign a pass and return the row central keeps; ValueError when it cannot be encoded."""
    pass_id = os.urandom(8)
    display_name = mask_name(body.holder)
    data = PassData(
        pass_id=pass_id,
        site=body.site,
        kind=body.kind,
        valid_from=int(body.valid_from.timestamp()),
        valid_until=int(body.valid_until.timestamp()),
        display_name=display_name,
        gates=tuple(body.gates),
        hours=parse_hours(body.hours) if body.hours else None,
        weekdays=parse_weekdays(body.days or ""),
        max_uses=body.max_uses,
    )
    if body.device_bound:
        check_fits(data, key)
        text = ""  # signed when the phone enrols (central/routes/enrol.py)
    else:
        text = encode_pass(data, key)  # only the masked name goes in the pass
    return {
        **body.model_dump(exclude={"device_bound"}),
        "pass_id": pass_id.hex(),
        "kind": body.kind.value,
        "display_name": display_name,
        "key_id": key_id_of(key.verify_key).hex(),
        "text": text,
        "issued_at": now,
        "issued_by": user.name,
    }
