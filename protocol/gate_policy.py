"""A gate's policy as central provisions it and the gate reads it: one model for both sides."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protocol.epass import HolderKind


class Direction(StrEnum):
    IN = "in"
    OUT = "out"
    BOTH = "both"


class TemperaturePolicy(StrEnum):
    OFF = "off"
    ADVISORY = "advisory"
    REQUIRED = "required"


class AntiPassback(StrEnum):
    OFF = "off"
    SOFT = "soft"
    HARD = "hard"


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


class GatePolicy(BaseModel):
    """The part of `[gate]` an admin chooses when provisioning a gate."""

    model_config = ConfigDict(extra="forbid")

    direction: Direction = Field(
        Direction.BOTH, description="Which way people pass: in, out, both."
    )
    timezone: TimeZoneName = Field("Asia/Shanghai", description="Zone for pass hours and weekdays.")
    temperature: TemperaturePolicy = Field(
        TemperaturePolicy.OFF, description="off, advisory (record only) or required (deny fever)."
    )
    fever_threshold: float = Field(
        37.3, ge=35.0, le=42.0, description="Deny at or above this body temperature, °C."
    )
    anti_passback: AntiPassback = Field(
        AntiPassback.OFF, description="off, soft (flag), hard (deny)."
    )
    live_code_kinds: list[HolderKind] = Field(
        default_factory=list,
        description="Holder kinds that must show a phone's live code; their printed passes fail.",
    )
