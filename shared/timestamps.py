"""Timestamps as the stores write them: ISO 8601 strings or epoch milliseconds.

ISO 8601 is read with lsmigrate's own grammar rather than
`datetime.fromisoformat`, whose grammar differs between the Python the
server runs and the one in Pyodide (3.12 began to accept hour 24): a date
`YYYY-MM-DD`, optionally a time `hh:mm[:ss[.fraction]]` after `T`, `t` or a
space, and optionally `Z` or an offset `±hh[[:]mm]`. `24:00[:00[.0…]]` is the
end of the day, i.e. the next day's midnight.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 0001-01-01 .. 9999-12-31 in epoch milliseconds: what datetime can hold.
_MIN_MS = -62135596800000
_MAX_MS = 253402300799999
_EPOCH_MS_TEXT = re.compile(r"-?[0-9]{1,16}")
# What `Date.prototype.toISOString` writes; these map onto columns without a datetime round trip.
JS_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_ISO_8601 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?"
    r"([Zz]|([+-])([0-9]{2})(?::?([0-9]{2}))?)?)?"
)


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
    return _from_iso_8601(text)


def _from_iso_8601(text: str) -> datetime | None:
    match = _ISO_8601.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _zone, sign, zone_hours, zone_minutes = match.groups()
    hours = int(hour or 0)
    extra_day = hours == 24
    if extra_day:
        if int(minute) or int(second or 0) or int(fraction or 0):
            return None
        hours = 0
    try:
        offset = timedelta(hours=int(zone_hours or 0), minutes=int(zone_minutes or 0))
        if sign == "-":
            offset = -offset
        moment = datetime(
            int(year),
            int(month),
            int(day),
            hours,
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(offset),
        )
        if extra_day:
            moment += timedelta(days=1)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        # ValueError: no such date or time, or an offset of a day or more; OverflowError: an
        # offset or hour 24 that moves 0001-01-01 or 9999-12-31 out of range.
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
    """The ISO form kept in a mapped row (microseconds, explicit UTC offset); a naive moment is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
