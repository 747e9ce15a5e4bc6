"""Parsing and formatting timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lsmigrate.shared.timestamps import format_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-15T10:30:00.000Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T11:30:00+01:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        (1705314600000, datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        (1705314600000.0, datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("garbage", None),
        ("", None),
        (True, None),
        (10**20, None),
        (float("nan"), None),
        ({"at": 1}, None),
    ],
)
def test_parse_timestamp(value: Any, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected


def test_format_timestamp_is_what_to_iso_string_writes() -> None:
    assert format_timestamp(datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)) == "2024-01-15T10:30:00.123Z"
