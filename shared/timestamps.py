"""Timestamps as the stores write them: ISO 8601 strings or epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 0001-01-01 .. 9999-12-31 in epoch milliseconds: what datetime can hold.
_MIN_MS = -62135596800000
_MAX_MS = 253402300799999


def _from_epoch_ms(millis: float) -> datetime | None:
    if not _MIN_MS <= millis <= _MAX_MS:
        return None
    return _EPOCH + timedelta(milliseconds=millis)


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime, or None when the value is not a timestamp.

    Accepts ISO 8601 strings (a missing offset is taken as UTC) and epoch
    milliseconds as a number or a string of digits.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch_ms(value) if value == value else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return _from_epoch_ms(int(text))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """The form `Date.prototype.toISOString` writes: 2024-01-15T10:30:00.000Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def column_timestamp(moment: datetime) -> str:
    """The ISO form kept in a mapped row (microseconds, explicit UTC offset)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
