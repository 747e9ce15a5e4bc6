"""Parsing and formatting timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lsmigrate.shared.fields import Timestamp
from lsmigrate.shared.timestamps import format_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-15T10:30:00.000Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T11:30:00+01:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        (1705314600000, datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        (1705314600000.0, datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        # lsmigrate's own grammar, the same on every Python (fromisoformat's is not).
        ("2024-01-15", datetime(2024, 1, 15, tzinfo=UTC)),
        ("2024-01-15 10:30", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15t10:30:00,5z", datetime(2024, 1, 15, 10, 30, 0, 500000, tzinfo=UTC)),
        ("2024-01-15T10:30:00.123456789Z", datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)),
        ("2024-01-15T16:00+0530", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T05:30-05", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T24:00:00.000Z", datetime(2024, 1, 16, tzinfo=UTC)),
        ("2024-12-31T24:00+01:00", datetime(2024, 12, 31, 23, tzinfo=UTC)),
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


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59+00:00Z",
        "9999-12-31T23:59:59-01:00",
        "\ud800",
        "２０２４-01-15",
        "2024-01-15T24:30",
        "9999-12-31T24:00Z",
        "2024-01-15T10:30+24:00",
        "20240115T103000Z",
        "2024-W03-1",
    ],
)
def test_values_out_of_range_or_not_iso_are_not_timestamps(value: str) -> None:
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    ("value", "column", "exact"),
    [
        ("2024-01-15T10:30:00.000Z", "2024-01-15T10:30:00.000000+00:00", True),
        ("0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00.000000+00:00", True),
        ("2024-01-15T10:30:00.123Z", "2024-01-15T10:30:00.123000+00:00", True),
        ("2024-01-15T10:30:00Z", "2024-01-15T10:30:00.000000+00:00", False),
        ("2024-02-30T10:30:00.000Z", None, False),
        ("2024-01-15T24:00:00.000Z", "2024-01-16T00:00:00.000000+00:00", False),
        (1705314600000, "2024-01-15T10:30:00.000000+00:00", False),
        ("1705314600000", "2024-01-15T10:30:00.000000+00:00", False),
        ("soon", None, False),
    ],
)
def test_the_timestamp_field_says_when_its_column_gives_the_value_back(
    value: Any, column: str | None, exact: bool
) -> None:
    field = Timestamp()
    assert field.convert(value) == (column, exact)
    if exact:
        assert field.to_source(column) == value


def test_hour_24_is_not_exact_on_any_python() -> None:
    # toISOString never writes T24:00; Python 3.12+ reads it as the next day, 3.11 refuses it.
    column, exact = Timestamp().convert("2024-01-15T24:00:00.000Z")
    assert not exact
    assert column in (None, "2024-01-16T00:00:00.000000+00:00")
