"""The task mapping rules of design §4, one table per rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.catalog import STORES
from lsmigrate.shared.ids import derived_id
from lsmigrate.shared.mapping import MappedRecord

SPEC = STORES.named("tasks")
MIGRATED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UUID = "9f1c1c1e-8a7b-4c2d-9e3f-0a1b2c3d4e5f"


def map_one(record: Any, user_id: str = "alice") -> MappedRecord:
    [mapped] = SPEC.map([record], key="task-store", user_id=user_id, migrated_at=MIGRATED_AT)
    return mapped


def codes(mapped: MappedRecord) -> set[str]:
    return {warning["code"] for warning in mapped.warnings}


@pytest.mark.parametrize(
    ("source_id", "expected_id", "kept"),
    [
        (UUID, UUID, False),
        (UUID.upper(), UUID, True),
        ("task-1", derived_id("alice", "tasks", "task-1"), True),
        (17, derived_id("alice", "tasks", 17), True),
        ("17", derived_id("alice", "tasks", "17"), True),
    ],
)
def test_id_is_kept_when_a_uuid_and_derived_otherwise(source_id: Any, expected_id: str, kept: bool) -> None:
    mapped = map_one({"id": source_id, "title": "t"})
    assert mapped.row is not None
    assert mapped.row["id"] == expected_id
    assert ("source_id" in mapped.row["metadata"]) is kept
    if kept:
        assert mapped.row["metadata"]["source_id"] == source_id


def test_derived_ids_differ_between_users_and_between_numbers_and_strings() -> None:
    ids = {
        map_one({"id": "task-1"}, "alice").row["id"],  # type: ignore[index]
        map_one({"id": "task-1"}, "bob").row["id"],  # type: ignore[index]
        map_one({"id": 1}, "alice").row["id"],  # type: ignore[index]
        map_one({"id": "1"}, "alice").row["id"],  # type: ignore[index]
    }
    assert len(ids) == 4


def test_missing_id_comes_from_the_content_and_is_stable() -> None:
    first, second = map_one({"title": "same"}), map_one({"title": "same"})
    other = map_one({"title": "different"})
    assert first.row["id"] == second.row["id"] != other.row["id"]  # type: ignore[index]
    assert "id_missing" in codes(first)


@pytest.mark.parametrize("length", [1, 300, 100_000])
def test_title_is_kept_whole(length: int) -> None:
    title = "é" * length
    mapped = map_one({"id": UUID, "title": title})
    assert mapped.row["title"] == title  # type: ignore[index]
    assert "original" not in mapped.row["metadata"]  # type: ignore[index]


def test_html_in_a_title_is_kept_verbatim() -> None:
    title = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    assert map_one({"title": title}).row["title"] == title  # type: ignore[index]


@pytest.mark.parametrize("record", [{}, {"title": ""}, {"title": None}])
def test_missing_or_empty_title_becomes_untitled_with_a_warning(record: dict[str, Any]) -> None:
    mapped = map_one(record)
    assert mapped.row["title"] == "Untitled task"  # type: ignore[index]
    assert "title_missing" in codes(mapped)


@pytest.mark.parametrize(
    ("status", "column", "warning"),
    [
        ("IN_PROGRESS", "in_progress", None),
        ("DONE", "completed", None),
        ("MERGED", "merged", None),
        ("PAUSED", "paused", None),
        ("CANCELLED", "cancelled", None),
        ("in-progress", "in_progress", "status_variant"),
        ("In Progress", "in_progress", "status_variant"),
        ("canceled", "cancelled", "status_variant"),
        ("done", "completed", "status_variant"),
        ("WEIRD", "pending", "status_unknown"),
        (3, "pending", "status_unknown"),
        (None, "pending", "status_missing"),
    ],
)
def test_status_mapping(status: Any, column: str, warning: str | None) -> None:
    mapped = map_one({"title": "t", "status": status})
    assert mapped.row["status"] == column  # type: ignore[index]
    status_warnings = {c for c in codes(mapped) if c.startswith("status")}
    assert status_warnings == ({warning} if warning else set())
    if warning:
        assert mapped.row["metadata"]["original"]["status"] == status  # type: ignore[index]


@pytest.mark.parametrize(
    ("record", "priority"),
    [
        ({"pullRequest": {"url": "u", "number": 1}}, "high"),
        ({"hasChanges": True, "mode": "ask"}, "high"),
        ({"mode": "ask"}, "low"),
        ({"mode": "code"}, "medium"),
        ({}, "medium"),
    ],
)
def test_priority_from_pull_request_changes_and_mode(record: dict[str, Any], priority: str) -> None:
    mapped = map_one({"title": "t", **record})
    assert mapped.row["priority"] == priority  # type: ignore[index]
    if "mode" in record:
        assert mapped.row["metadata"]["mode"] == record["mode"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("created", "column", "warning"),
    [
        ("2024-01-15T10:30:00.000Z", "2024-01-15T10:30:00.000000+00:00", None),
        ("2024-01-15T12:30:00+02:00", "2024-01-15T10:30:00.000000+00:00", "timestamp_normalised"),
        ("2024-01-15T10:30:00", "2024-01-15T10:30:00.000000+00:00", "timestamp_normalised"),
        (1705314600000, "2024-01-15T10:30:00.000000+00:00", "timestamp_epoch_ms"),
        ("1705314600000", "2024-01-15T10:30:00.000000+00:00", "timestamp_epoch_ms"),
    ],
)
def test_timestamps_become_utc(created: Any, column: str, warning: str | None) -> None:
    mapped = map_one({"title": "t", "createdAt": created, "updatedAt": "2024-02-01T00:00:00.000Z"})
    assert mapped.row["created_at"] == column  # type: ignore[index]
    assert ({c for c in codes(mapped) if c.startswith("timestamp")}) == ({warning} if warning else set())


def test_unparseable_dates_fall_back_to_the_other_date_then_the_migration_time() -> None:
    mapped = map_one({"title": "t", "createdAt": "yesterday", "updatedAt": "2024-02-01T00:00:00.000Z"})
    assert mapped.row["created_at"] == "2024-02-01T00:00:00.000000+00:00"  # type: ignore[index]
    assert mapped.row["metadata"]["original"]["createdAt"] == "yesterday"  # type: ignore[index]
    assert "timestamp_unparseable" in codes(mapped)
    neither = map_one({"title": "t", "createdAt": "nope"})
    assert neither.row["created_at"] == neither.row["updated_at"] == MIGRATED_AT.isoformat(timespec="microseconds")  # type: ignore[index]


def test_messages_unknown_fields_and_proto_keys_go_to_metadata_unchanged() -> None:
    messages = [{"role": "user", "type": "message", "data": {"nested": [1, {"junk": None}]}}]
    mapped = map_one({"title": "t", "messages": messages, "color": "red", "__proto__": {"polluted": True}})
    meta = mapped.row["metadata"]  # type: ignore[index]
    assert meta["messages"] == messages
    assert meta["extra"] == {"color": "red", "__proto__": {"polluted": True}}


@pytest.mark.parametrize(
    ("field", "value", "column", "column_value", "warning"),
    [
        ("isArchived", "true", "is_archived", True, "flag_converted"),
        ("hasChanges", 0, "has_changes", False, "flag_converted"),
        ("branch", 42, "branch", "42", "number_as_text"),
        ("sessionId", "s-1", "session_id", "s-1", None),
        ("statusMessage", "ok", "status_message", "ok", None),
    ],
)
def test_known_fields_are_typed(field: str, value: Any, column: str, column_value: Any, warning: str | None) -> None:
    mapped = map_one({"title": "t", field: value})
    assert mapped.row[column] == column_value  # type: ignore[index]
    assert (
        (warning in codes(mapped))
        if warning
        else not (codes(mapped) - {"id_missing", "timestamp_missing", "status_missing"})
    )


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"title": {"text": "x"}}, "title"),
        ({"title": "t", "isArchived": "maybe"}, "isArchived"),
        ({"title": "t", "pullRequest": [1, 2]}, "pullRequest"),
        ({"title": "t", "id": {"nested": 1}}, "id"),
    ],
)
def test_values_that_cannot_be_converted_without_guessing_are_quarantined(record: dict[str, Any], field: str) -> None:
    mapped = map_one(record)
    assert mapped.quarantined
    assert [reason["field"] for reason in mapped.reasons] == [field]


@pytest.mark.parametrize("record", ["a string", 7, None, [1, 2]])
def test_a_record_that_is_not_an_object_is_quarantined(record: Any) -> None:
    mapped = map_one(record)
    assert mapped.quarantined
    assert mapped.reasons[0]["code"] == "not_an_object"


@pytest.mark.parametrize(
    "record",
    [
        {"id": "task-1", "title": "Fix", "status": "DONE", "createdAt": "2024-01-15T10:30:00.000Z"},
        {"title": "", "status": "canceled", "createdAt": "garbage", "updatedAt": None, "isArchived": "false"},
        {"id": UUID.upper(), "title": 5, "createdAt": 1705314600000, "x": {"__proto__": 1}, "mode": "ask"},
        {"messages": None, "pullRequest": None, "description": None, "hasChanges": 1},
    ],
)
def test_rebuild_gives_the_source_record_back(record: dict[str, Any]) -> None:
    mapped = map_one(record)
    assert mapped.row is not None
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)
