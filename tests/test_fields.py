"""The source fields' conversions: the date-only field, on its own and in a mapping."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from marshmallow import ValidationError

from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.fields import Date, Text, Timestamp
from lsmigrate.shared.mapping import RecordMapper, RecordSchema

EXPECTED = "expected a date (YYYY-MM-DD, an ISO 8601 time or epoch milliseconds), found"


@pytest.mark.parametrize(
    ("value", "column", "exact", "code"),
    [
        ("2025-06-09", "2025-06-09", True, None),
        ("2024-02-29", "2024-02-29", True, None),
        ("0001-01-01", "0001-01-01", True, None),
        ("9999-12-31", "9999-12-31", True, None),
        # A time becomes its UTC date.
        ("2025-06-09T23:30:00.000Z", "2025-06-09", False, "date_from_timestamp"),
        ("2025-06-09T23:30:00-02:00", "2025-06-10", False, "date_from_timestamp"),
        ("2025-06-09T01:00:00+05:00", "2025-06-08", False, "date_from_timestamp"),
        ("2025-06-09 12:00", "2025-06-09", False, "date_from_timestamp"),
        (" 2025-06-09 ", "2025-06-09", False, "date_from_timestamp"),
        # Epoch milliseconds, as a number or as digits.
        (1749427200000, "2025-06-09", False, "date_epoch_ms"),
        (1749513540000, "2025-06-09", False, "date_epoch_ms"),
        (1749427200000.0, "2025-06-09", False, "date_epoch_ms"),
        ("1749427200000", "2025-06-09", False, "date_epoch_ms"),
        (-1, "1969-12-31", False, "date_epoch_ms"),
        (0, "1970-01-01", False, "date_epoch_ms"),
    ],
)
def test_a_date_is_kept_as_its_iso_date_text_and_a_time_becomes_its_utc_date(
    value: Any, column: str, exact: bool, code: str | None
) -> None:
    field = Date()
    assert field.convert(value) == (column, exact)
    if exact:
        assert field.to_source(column) == value
    else:
        assert field.warning_code(value) == code


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("2025-02-30", "string"),
        ("2025-13-01", "string"),
        ("0000-01-01", "string"),
        ("2025-6-9", "string"),
        ("09/06/2025", "string"),
        ("yesterday", "string"),
        ("", "string"),
        ("2025-06-09T25:00:00Z", "string"),
        (1e20, "number"),
        (True, "boolean"),
        ([2025, 6, 9], "array"),
        ({"year": 2025}, "object"),
    ],
)
def test_anything_else_is_refused_naming_its_json_type_never_its_value(value: Any, found: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Date().convert(value)
    assert caught.value.messages == [f"{EXPECTED} {found}"]


def test_a_date_column_read_back_as_a_date_or_a_time_gives_its_text() -> None:
    assert Date().to_source(date(2025, 6, 9)) == "2025-06-09"
    assert Date().to_source(datetime(2025, 6, 9, tzinfo=UTC)) == "2025-06-09"
    assert Date().to_source("2025-06-08T20:00:00-04:00") == "2025-06-09"  # a timestamptz column, read elsewhere
    assert Date().to_source(None) is None
    assert Date(default="1970-01-01").warning_code(None) == "value_defaulted"


def test_a_timestamp_still_reads_a_date_as_its_midnight_utc() -> None:
    assert Timestamp().convert("2025-06-09") == ("2025-06-09T00:00:00.000000+00:00", False)


class EventSchema(RecordSchema):
    title = Text(data_key="title")
    day = Date(data_key="day")
    updated_at = Timestamp(data_key="updatedAt")


MAPPER = RecordMapper(EventSchema(), "events", "id")
WHEN = "2026-01-02T03:04:05.000000+00:00"
ID = "7f0c2a3e-1b2c-4d5e-8f90-0123456789ab"


def map_event(record: dict[str, Any]) -> Any:
    return MAPPER.map(record, key="events", index=0, user_id="alice", migrated_at=WHEN)


@pytest.mark.parametrize(
    ("day", "column", "warnings"),
    [
        ("2025-06-09", "2025-06-09", []),
        ("2025-06-09T22:00:00.000-03:00", "2025-06-10", [{"code": "date_from_timestamp", "field": "day"}]),
        (1749427200000, "2025-06-09", [{"code": "date_epoch_ms", "field": "day"}]),
        (None, None, []),
    ],
)
def test_a_mapped_date_gives_its_source_value_back(day: Any, column: str | None, warnings: list[Any]) -> None:
    record = {"id": ID, "title": "Launch", "day": day, "updatedAt": "2025-06-01T00:00:00.000Z"}
    mapped = map_event(record)
    assert mapped.row is not None
    assert mapped.row["day"] == column
    assert mapped.warnings == warnings
    assert ("original" in mapped.row["metadata"]) == bool(warnings)
    assert canonical_json(MAPPER.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)


def test_a_date_the_calendar_lacks_sends_the_record_to_the_quarantine_without_its_value() -> None:
    mapped = map_event({"id": "e1", "day": "2025-02-30"})
    assert mapped.quarantined
    assert mapped.reasons == [{"code": "wrong_type", "field": "day", "message": f"{EXPECTED} string"}]
    assert "2025-02-30" not in json.dumps(mapped.as_dict())
