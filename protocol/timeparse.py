"""ISO 8601 times as people type them: an offset is honoured, none means the given time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def parse_when(text: str, tz: ZoneInfo) -> datetime:
    """Parse ISO 8601; a naive time is taken in tz. Raises ValueError with the offending text."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01T08:00+08:00)") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when
