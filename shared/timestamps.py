"""Timestamps as the stores write them: ISO 8601 strings or epoch milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 0001-01-01 .. 9999-12-31 in epoch milliseconds: what datetime can hold.
_MIN_MS = -62135596800000
_MAX_MS = 253402300799999
_EPOCH_MS_TEXT = re.compile(r"-?[0-9]{1,16}")
# What `Date.prototype.toISOString` writes; these map onto columns without a datetime round trip.
JS_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def _from_epoch_ms(millis: float) -> datetime | None:
    if not _MIN_MS <= millis <= _MAX_MS:
        return None
    return _EPOCH + timedelta(milliseconds=millis)


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime, or None when the value is not a timestamp.

    Accepts ISO 8601 strings (a missing offset is taken as UTC) and epoch
    milliseconds as a number or a string of ASCII digits.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch_ms(value) if value == value else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _EPOCH_MS_TEXT.fullmatch(text):
        return _from_epoch_ms(int(text))
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        # OverflowError: an offset that moves 0001-01-01 or 9999-12-31 out of range.
        return None


def is_epoch_ms(value: Any) -> bool:
    """True for a number, or a string of digits, that `parse_timestamp` reads as epoch milliseconds."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and _EPOCH_MS_TEXT.fullmatch(value.strip()) is not None


def format_timestamp(moment: datetime) -> str:
    """The form `Date.prototype.toISOString` writes: 2024-01-15T10:30:00.000Z."""
    utc = moment.astimezone(UTC)
    # Formatted by hand: strftime("%Y") does not pad years below 1000 on every libc.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def column_timestamp(moment: datetime) -> str:
    """The ISO form kept in a mapped row (microseconds, explicit UTC offset)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
