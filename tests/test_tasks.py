"""The task mapping rules of design §4, one table per rule."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from marshmallow import ValidationError, validate

from lsmigrate.demo.stores import STORES
from lsmigrate.shared import mapping
from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.fields import Date, Secret, SourceField, Text, json_type
from lsmigrate.shared.ids import derived_id
from lsmigrate.shared.mapping import MappedRecord, RecordSchema
from lsmigrate.shared.stores import StoreSpec

SPEC = STORES.named("tasks")
MIGRATED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UUID = "9f1c1c1e-8a7b-4c2d-9e3f-0a1b2c3d4e5f"


def map_one(record: Any, user_id: str = "alice") -> MappedRecord:
    [mapped] = SPEC.map([record], key="task-store", user_id=user_id, migrated_at=MIGRATED_AT)
    return mapped


def codes(mapped: MappedRecord) -> set[str]:
    return {warning["code"] for warning in mapped.warnings}


@pytest.mark.parametrize(
    ("source_id", "expected_id", "kept", "warning"),
    [
        (UUID, UUID, False, None),
        (UUID.upper(), UUID, True, "id_lowercased"),
        ("9F1C1C1E-8a7b-4C2D-9e3f-0A1B2C3D4E5F", UUID, True, "id_lowercased"),
        ("task-1", derived_id("alice", "tasks", "task-1"), True, "id_derived"),
        (17, derived_id("alice", "tasks", 17), True, "id_derived"),
        (17.0, derived_id("alice", "tasks", 17), True, "id_derived"),  # JSON.stringify writes 17.0 as 17
        ("17", derived_id("alice", "tasks", "17"), True, "id_derived"),
        (f"{{{UUID}}}", derived_id("alice", "tasks", f"{{{UUID}}}"), True, "id_derived"),
        (UUID.replace("-", ""), derived_id("alice", "tasks", UUID.replace("-", "")), True, "id_derived"),
        (f" {UUID}", derived_id("alice", "tasks", f" {UUID}"), True, "id_derived"),
    ],
)
def test_id_is_kept_when_a_uuid_and_derived_otherwise(
    source_id: Any, expected_id: str, kept: bool, warning: str | None
) -> None:
    mapped = map_one({"id": source_id, "title": "t"})
    assert mapped.row is not None
    assert mapped.row["id"] == expected_id
    assert ("source_id" in mapped.row["metadata"]) is kept
    if kept:
        assert mapped.row["metadata"]["source_id"] == source_id
    assert [w for w in mapped.warnings if w["field"] == "id"] == ([{"code": warning, "field": "id"}] if warning else [])


@pytest.mark.parametrize("record", [{"title": "t"}, {"id": None, "title": "t"}, {"id": "", "title": "t"}])
def test_a_missing_null_or_empty_id_comes_from_the_content(record: dict[str, Any]) -> None:
    mapped = map_one(record)
    assert {"code": "id_missing", "field": "id"} in mapped.warnings
    assert mapped.row["id"] == map_one(dict(record)).row["id"]  # type: ignore[index]
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)  # type: ignore[arg-type]


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


@pytest.mark.parametrize(
    "title",
    [
        '<img src=x onerror="alert(1)">',
        "<b>bold</b> &amp; &lt;escaped&gt;",
        "</textarea><svg/onload=alert(1)>",
        "{{constructor.constructor('alert(1)')()}}",
        "line\nbreak\ttab\u0000nul",
        " padded ",
        "Untitled task",
    ],
)
def test_a_title_is_kept_verbatim_without_a_warning(title: str) -> None:
    mapped = map_one({"id": UUID, "title": title})
    assert mapped.row["title"] == title  # type: ignore[index]
    assert "original" not in mapped.row["metadata"]  # type: ignore[index]
    assert "title_missing" not in codes(mapped)


@pytest.mark.parametrize("record", [{}, {"title": ""}, {"title": None}])
def test_missing_or_empty_title_becomes_untitled_with_a_warning(record: dict[str, Any]) -> None:
    mapped = map_one(record)
    assert mapped.row["title"] == "Untitled task"  # type: ignore[index]
    assert "title_missing" in codes(mapped)
    if "title" in record:
        assert mapped.row["metadata"]["original"] == {"title": record["title"]}  # type: ignore[index]
    else:
        assert "title" in mapped.row["metadata"]["absent"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("title", "column"),
    [(42, "42"), (0, "0"), (-1.5, "-1.5"), (2.0, "2"), (1e21, "1e+21"), (10**20, "100000000000000000000")],
)
def test_a_number_as_title_is_written_as_text_and_kept(title: Any, column: str) -> None:
    mapped = map_one({"id": UUID, "title": title})
    assert mapped.row["title"] == column  # type: ignore[index]
    assert {"code": "number_as_text", "field": "title"} in mapped.warnings
    assert mapped.row["metadata"]["original"] == {"title": title}  # type: ignore[index]


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
        ("in_progress", "in_progress", "status_variant"),
        ("InProgress", "in_progress", "status_variant"),
        ("in progress", "in_progress", "status_variant"),
        ("IN-PROGRESS", "in_progress", "status_variant"),
        (" DONE ", "completed", "status_variant"),
        ("Done", "completed", "status_variant"),
        ("COMPLETED", "completed", "status_variant"),
        ("complete", "completed", "status_variant"),
        ("Merged", "merged", "status_variant"),
        ("paused", "paused", "status_variant"),
        ("CANCELED", "cancelled", "status_variant"),
        ("Cancelled", "cancelled", "status_variant"),
        ("WEIRD", "pending", "status_unknown"),
        ("pending", "pending", "status_unknown"),
        ("", "pending", "status_unknown"),
        (3, "pending", "status_unknown"),
        (["DONE"], "pending", "status_unknown"),
        ({"value": "DONE"}, "pending", "status_unknown"),
        (True, "pending", "status_unknown"),
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
        (1705314600000.0, "2024-01-15T10:30:00.000000+00:00", "timestamp_epoch_ms"),
        (1705314600123.5, "2024-01-15T10:30:00.123500+00:00", "timestamp_epoch_ms"),
        (-86400000, "1969-12-31T00:00:00.000000+00:00", "timestamp_epoch_ms"),
        ("2024-01-15", "2024-01-15T00:00:00.000000+00:00", "timestamp_normalised"),
        ("2024-01-15 10:30:00Z", "2024-01-15T10:30:00.000000+00:00", "timestamp_normalised"),
        ("2024-01-15T10:30:00.123456Z", "2024-01-15T10:30:00.123456+00:00", "timestamp_normalised"),
    ],
)
def test_timestamps_become_utc(created: Any, column: str, warning: str | None) -> None:
    mapped = map_one({"title": "t", "createdAt": created, "updatedAt": "2024-02-01T00:00:00.000Z"})
    assert mapped.row["created_at"] == column  # type: ignore[index]
    assert ({c for c in codes(mapped) if c.startswith("timestamp")}) == ({warning} if warning else set())


@pytest.mark.parametrize(
    "created",
    [
        "yesterday",
        "",
        "2024-13-01T00:00:00.000Z",
        "2024-02-30T10:30:00.000Z",
        "0000-01-01T00:00:00.000Z",
        "15/01/2024",
        10**20,
        -(10**20),
        True,
        [2024, 1, 15],
        {"$date": 1705314600000},
    ],
)
def test_an_unparseable_date_falls_back_and_is_kept(created: Any) -> None:
    mapped = map_one({"id": UUID, "createdAt": created, "updatedAt": "2024-02-01T00:00:00.000Z"})
    assert mapped.row["created_at"] == "2024-02-01T00:00:00.000000+00:00"  # type: ignore[index]
    assert mapped.row["metadata"]["original"]["createdAt"] == created  # type: ignore[index]
    assert {"code": "timestamp_unparseable", "field": "createdAt"} in mapped.warnings


def test_hour_24_is_never_taken_as_exact() -> None:
    # Python 3.12+ (Pyodide) reads T24:00 as the next day's midnight, 3.11 refuses it; either
    # way the original is kept, so the row gives the record back.
    record = {"id": UUID, "createdAt": "2024-01-15T24:00:00.000Z"}
    mapped = map_one(record)
    assert mapped.row["metadata"]["original"]["createdAt"] == "2024-01-15T24:00:00.000Z"  # type: ignore[index]
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "created", "updated"),
    [
        ({"createdAt": None, "updatedAt": None}, MIGRATED_AT, MIGRATED_AT),
        ({"createdAt": None, "updatedAt": "2024-02-01T00:00:00.000Z"}, "2024-02-01", "2024-02-01"),
        ({"createdAt": "2024-02-01T00:00:00.000Z", "updatedAt": None}, "2024-02-01", "2024-02-01"),
        ({}, MIGRATED_AT, MIGRATED_AT),
    ],
)
def test_null_or_missing_timestamps_fall_back_with_a_warning(
    record: dict[str, Any], created: Any, updated: Any
) -> None:
    mapped = map_one({"id": UUID, **record})
    expected = [
        value.isoformat(timespec="microseconds") if isinstance(value, datetime) else f"{value}T00:00:00.000000+00:00"
        for value in (created, updated)
    ]
    assert [mapped.row["created_at"], mapped.row["updated_at"]] == expected  # type: ignore[index]
    for field in ("createdAt", "updatedAt"):
        if record.get(field, "absent") is None:
            assert mapped.row["metadata"]["original"][field] is None  # type: ignore[index]
            assert {"code": "timestamp_missing", "field": field} in mapped.warnings
        elif field not in record:
            assert field in mapped.row["metadata"]["absent"]  # type: ignore[index]
            assert {"code": "timestamp_missing", "field": field} in mapped.warnings
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json({"id": UUID, **record})  # type: ignore[arg-type]


def test_unparseable_dates_fall_back_to_the_other_date_then_the_migration_time() -> None:
    mapped = map_one({"title": "t", "createdAt": "yesterday", "updatedAt": "2024-02-01T00:00:00.000Z"})
    assert mapped.row["created_at"] == "2024-02-01T00:00:00.000000+00:00"  # type: ignore[index]
    assert mapped.row["metadata"]["original"]["createdAt"] == "yesterday"  # type: ignore[index]
    assert "timestamp_unparseable" in codes(mapped)
    neither = map_one({"title": "t", "createdAt": "nope"})
    assert neither.row["created_at"] == neither.row["updated_at"] == MIGRATED_AT.isoformat(timespec="microseconds")  # type: ignore[index]


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "type": "message", "data": {"text": "<b>hi</b>"}}],
        [{"role": "assistant", "type": "tool", "data": [[[{"deep": [None, 1.5, {"x": []}]}]]]}],
        [{"type": 7}, "a bare string", None, 3, [], {}],
        [{"role": "user", "data": {"__proto__": {"admin": True}, "constructor": None}}],
        "not an array",
        {"0": {"role": "user"}},
        None,
        [],
        [{"data": "é" * 100_000}],
    ],
)
def test_messages_are_kept_unchanged_whatever_they_hold(messages: Any) -> None:
    record = {"id": UUID, "title": "t", "messages": messages}
    mapped = map_one(record)
    assert mapped.row["metadata"]["messages"] == messages  # type: ignore[index]
    assert not [w for w in mapped.warnings if w["field"] == "messages"]
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "extra",
    [
        {"__proto__": {"isAdmin": True}},
        {"constructor": {"prototype": {"polluted": 1}}},
        {"__proto__": None, "prototype": [1]},
        {"metadata": {"extra": 1}, "extra": 2, "original": 3, "absent": 4, "source_id": 5},
        {"session_id": "snake", "priority": "urgent", "is_archived": True},
        {"": "empty key", " id": "spaced"},
    ],
)
def test_unknown_and_prototype_keys_are_kept_in_extra(extra: dict[str, Any]) -> None:
    record = {"id": UUID, "title": "t", **extra}
    mapped = map_one(record)
    assert mapped.row["metadata"]["extra"] == extra  # type: ignore[index]
    assert mapped.row["priority"] == "medium"  # type: ignore[index]
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)  # type: ignore[arg-type]


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
        ("isArchived", "TRUE", "is_archived", True, "flag_converted"),
        ("isArchived", " false ", "is_archived", False, "flag_converted"),
        ("isArchived", "1", "is_archived", True, "flag_converted"),
        ("isArchived", 1.0, "is_archived", True, "flag_converted"),
        ("isArchived", None, "is_archived", False, "flag_converted"),
        ("isArchived", True, "is_archived", True, None),
        ("hasChanges", 0, "has_changes", False, "flag_converted"),
        ("hasChanges", "false", "has_changes", False, "flag_converted"),
        ("branch", 42, "branch", "42", "number_as_text"),
        ("description", 1.25, "description", "1.25", "number_as_text"),
        ("repository", "<a href=x>repo</a>", "repository", "<a href=x>repo</a>", None),
        ("pullRequest", {"url": "u", "number": "12"}, "pull_request", {"url": "u", "number": "12"}, None),
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
    ("record", "reasons"),
    [
        ({"title": {"text": "x"}}, [("wrong_type", "title", "expected text, found object")]),
        ({"title": True}, [("wrong_type", "title", "expected text, found boolean")]),
        ({"title": "t", "isArchived": "maybe"}, [("wrong_type", "isArchived", "expected a boolean, found string")]),
        ({"title": "t", "hasChanges": 2}, [("wrong_type", "hasChanges", "expected a boolean, found number")]),
        ({"title": "t", "pullRequest": [1, 2]}, [("wrong_type", "pullRequest", "expected an object, found array")]),
        ({"title": "t", "branch": ["main"]}, [("wrong_type", "branch", "expected text, found array")]),
        ({"title": "t", "id": {"nested": 1}}, [("invalid_id", "id", "expected a string or number id, found object")]),
        ({"title": "t", "id": True}, [("invalid_id", "id", "expected a string or number id, found boolean")]),
        ({"title": "t", "id": ["task-1"]}, [("invalid_id", "id", "expected a string or number id, found array")]),
        (
            {"title": [], "sessionId": {}, "isArchived": "nope"},
            [
                ("wrong_type", "title", "expected text, found array"),
                ("wrong_type", "sessionId", "expected text, found object"),
                ("wrong_type", "isArchived", "expected a boolean, found string"),
            ],
        ),
    ],
)
def test_values_that_cannot_be_converted_without_guessing_are_quarantined(
    record: dict[str, Any], reasons: list[tuple[str, str, str]]
) -> None:
    mapped = map_one(record)
    assert mapped.quarantined
    assert [(r["code"], r["field"], r["message"]) for r in mapped.reasons] == reasons
    assert mapped.warnings == [] and mapped.secrets == {}


@pytest.mark.parametrize(
    ("record", "found"),
    [("a string", "string"), (7, "number"), (None, "null"), ([1, 2], "array"), (True, "boolean")],
)
def test_a_record_that_is_not_an_object_is_quarantined(record: Any, found: str) -> None:
    mapped = map_one(record)
    assert mapped.quarantined
    assert mapped.reasons == [{"code": "not_an_object", "field": "", "message": f"expected an object, found {found}"}]


@pytest.mark.parametrize(
    "record",
    [
        {"id": "task-1", "title": "Fix", "status": "DONE", "createdAt": "2024-01-15T10:30:00.000Z"},
        {"title": "", "status": "canceled", "createdAt": "garbage", "updatedAt": None, "isArchived": "false"},
        {"id": UUID.upper(), "title": 5, "createdAt": 1705314600000, "x": {"__proto__": 1}, "mode": "ask"},
        {"messages": None, "pullRequest": None, "description": None, "hasChanges": 1},
        {"id": None, "title": None, "status": None, "isArchived": None, "createdAt": None, "updatedAt": None},
        {"id": "", "title": 0, "status": "In Progress", "createdAt": "1705314600000", "updatedAt": -1.5},
        {"__proto__": {"a": 1}, "constructor": "x", "title": "<script>x</script>", "extra": {"original": 1}},
        {"id": 1.0, "title": 1.0, "branch": -0.0, "isArchived": 0.0, "createdAt": 1705314600000.0},
        {"title": "t" * 100_000, "description": "\ud800 lone surrogate", "messages": [{"data": [[[]]]}]},
    ],
)
def test_rebuild_gives_the_source_record_back(record: dict[str, Any]) -> None:
    mapped = map_one(record)
    assert mapped.row is not None
    assert canonical_json(SPEC.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)


# --- every warning and reason code of the mapping ------------------------------------------------


class Lowered(SourceField):
    """A test field that folds case without naming why: the base `value_converted` warning."""

    def convert(self, value: Any) -> tuple[Any, bool]:
        if not isinstance(value, str):
            raise ValidationError(f"expected text, found {json_type(value)}")
        return value.lower(), value == value.lower()


class CheckedSchema(RecordSchema):
    """A test schema for the codes no task field gives."""

    code = Lowered()
    label = Text(default="n/a")
    short = Text(validate=validate.Length(max=3))
    token = Secret(validate=validate.Length(min=8))
    day = Date()


CHECKED = StoreSpec(name="checked", key="checked", table="checked", records_path="items", schema=CheckedSchema())

#: (warning code, the store, a record that gives it)
WARNINGS = [
    ("id_missing", SPEC, {"title": "t"}),
    ("id_derived", SPEC, {"id": "task-1"}),
    ("id_lowercased", SPEC, {"id": UUID.upper()}),
    ("title_missing", SPEC, {"title": ""}),
    ("status_variant", SPEC, {"status": "in-progress"}),
    ("status_unknown", SPEC, {"status": "WEIRD"}),
    ("status_missing", SPEC, {"status": None}),
    ("number_as_text", SPEC, {"branch": 7}),
    ("flag_converted", SPEC, {"isArchived": "true"}),
    ("timestamp_missing", SPEC, {"createdAt": None}),
    ("timestamp_unparseable", SPEC, {"createdAt": "soon"}),
    ("timestamp_epoch_ms", SPEC, {"createdAt": 1705314600000}),
    ("timestamp_normalised", SPEC, {"createdAt": "2024-01-15T10:30:00+00:00"}),
    ("value_converted", CHECKED, {"code": "ABC"}),
    ("value_defaulted", CHECKED, {"label": None}),
    ("date_epoch_ms", CHECKED, {"day": 1749427200000}),
    ("date_from_timestamp", CHECKED, {"day": "2025-06-09T10:00:00.000Z"}),
]


@pytest.mark.parametrize(("code", "spec", "record"), WARNINGS, ids=[row[0] for row in WARNINGS])
def test_every_warning_code(code: str, spec: StoreSpec, record: dict[str, Any]) -> None:
    [mapped] = spec.map([record], key=spec.key or "", user_id="alice", migrated_at=MIGRATED_AT)
    assert mapped.row is not None
    assert {"code": code, "field": "id" if code.startswith("id_") else next(iter(record))} in mapped.warnings
    # The original is kept wherever the column differs; the row gives the record back.
    assert canonical_json(spec.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)


def test_the_tables_cover_every_code_the_mapping_documents() -> None:
    section = mapping.__doc__.split("Warning codes")[1].split("Quarantine reason codes")  # type: ignore[union-attr]
    documented = set(re.findall(r"[<>a-z_]+_[a-z]+", section[0]))
    named = {
        "<field>_missing": "title_missing",
        "<field>_variant": "status_variant",
        "<field>_unknown": "status_unknown",
    }
    assert {named.get(code, code) for code in documented} | {"status_missing"} == {row[0] for row in WARNINGS}
    reasons = set(re.findall(r"[a-z]+_[a-z_]+", section[1].split("A secret")[0]))
    assert reasons == {row[0] for row in REASONS}


#: (reason code, the store, a record that gives it, the field)
REASONS = [
    ("not_an_object", SPEC, ["a", "list"], ""),
    ("invalid_id", SPEC, {"id": {"a": 1}}, "id"),
    ("wrong_type", SPEC, {"title": {"a": 1}}, "title"),
    ("wrong_type", CHECKED, {"code": 1}, "code"),
    ("invalid_value", CHECKED, {"short": "longer"}, "short"),
]


@pytest.mark.parametrize(("code", "spec", "record", "field"), REASONS)
def test_every_quarantine_reason_code(code: str, spec: StoreSpec, record: Any, field: str) -> None:
    [mapped] = spec.map([record], key=spec.key or "", user_id="alice", migrated_at=MIGRATED_AT)
    assert mapped.quarantined
    assert [(reason["code"], reason["field"]) for reason in mapped.reasons] == [(code, field)]
    # The message names types or rules, never the value.
    for value in record.values() if isinstance(record, dict) else [record]:
        if isinstance(value, str):
            assert value not in mapped.reasons[0]["message"]


def test_a_field_validator_runs_on_the_column_value() -> None:
    [ok, refused] = CHECKED.map(
        [{"short": "abc"}, {"short": 12345}], key="checked", user_id="alice", migrated_at=MIGRATED_AT
    )
    assert ok.row["short"] == "abc"  # type: ignore[index]
    # 12345 is converted to "12345" first, then the validator refuses it.
    assert refused.reasons == [{"code": "invalid_value", "field": "short", "message": "Longer than maximum length 3."}]


def test_a_secret_refused_by_its_validator_is_not_shown() -> None:
    [mapped] = CHECKED.map([{"token": "abc"}], key="checked", user_id="alice", migrated_at=MIGRATED_AT)
    assert mapped.reasons == [{"code": "invalid_value", "field": "token", "message": "the value was refused"}]
