"""Stores kept whole, one record per key: form drafts and user preferences."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from lsmigrate.demo.stores import STORES
from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.envelopes import SourceError
from lsmigrate.shared.ids import derived_id
from lsmigrate.shared.mapping import MappedRecord

DRAFTS = STORES.named("form_drafts")
PREFERENCES = STORES.named("user_preferences")
MIGRATED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
WHEN = "2026-01-02T03:04:05.000000+00:00"

DRAFT_VALUES = [
    {"title": "<b>Fix</b> <script>alert(1)</script>", "body": "&lt;p&gt; stays escaped"},
    {"title": "日本語 ✓ 🚀", "rtl": "\u202eabc", "lone": "\ud800", "nul": "\u0000"},
    {"nested": {"deeper": [{"a": [1, 2.5, None, True]}, []]}, "": "empty key"},
    {"__proto__": {"polluted": True}, "constructor": {"prototype": 1}},
    {"id": "task-1", "createdAt": "garbage", "status": "WEIRD"},  # task-like fields are not read
    {},
]


def map_draft(value: Any, key: str = "form-draft-1", user_id: str = "alice") -> MappedRecord:
    [record] = DRAFTS.extract(key, json.dumps(value)).records
    [mapped] = DRAFTS.map([record], key=key, user_id=user_id, migrated_at=MIGRATED_AT)
    return mapped


@pytest.mark.parametrize("value", DRAFT_VALUES)
def test_a_draft_is_kept_whole_under_its_key(value: dict[str, Any]) -> None:
    mapped = map_draft(value)
    assert mapped.row == {
        "id": derived_id("alice", "form_drafts", "form-draft-1"),
        "key": "form-draft-1",
        "data": value,
        "created_at": WHEN,
        "updated_at": WHEN,
        "metadata": {},
    }
    assert mapped.warnings == [] and mapped.reasons == [] and mapped.secrets == {}
    assert canonical_json(DRAFTS.rebuild(mapped.row, mapped.secrets)) == canonical_json(value)


def test_a_draft_id_comes_from_user_store_and_key_and_is_stable() -> None:
    first = map_draft({"a": 1}).row["id"]  # type: ignore[index]
    assert map_draft({"a": 1}).row["id"] == first  # type: ignore[index]
    assert map_draft({"a": 2, "b": 3}).row["id"] == first  # type: ignore[index]  # the key, not the content
    others = {
        map_draft({"a": 1}, key="form-draft-2").row["id"],  # type: ignore[index]
        map_draft({"a": 1}, user_id="bob").row["id"],  # type: ignore[index]
        map_draft({"a": 1}, key="taskFormDraft").row["id"],  # type: ignore[index]
    }
    assert first not in others and len(others) == 3


@pytest.mark.parametrize(
    ("value", "found"),
    [("a string", "string"), (["a", "b"], "array"), (42, "number"), (None, "null"), (True, "boolean")],
)
def test_a_draft_that_is_not_an_object_is_quarantined(value: Any, found: str) -> None:
    mapped = map_draft(value)
    assert mapped.quarantined
    assert mapped.reasons == [{"code": "not_an_object", "field": "", "message": f"expected an object, found {found}"}]


@pytest.mark.parametrize("value", DRAFT_VALUES)
def test_preferences_are_the_zustand_state_kept_whole(value: dict[str, Any]) -> None:
    extracted = PREFERENCES.extract("user-preferences", json.dumps({"state": value, "version": 0}))
    assert extracted.records == [value]
    [mapped] = PREFERENCES.map(extracted.records, key="user-preferences", user_id="alice", migrated_at=MIGRATED_AT)
    assert mapped.row == {
        "id": derived_id("alice", "user_preferences", "user-preferences"),
        "data": value,
        "created_at": WHEN,
        "updated_at": WHEN,
        "metadata": {},
    }
    assert canonical_json(PREFERENCES.rebuild(mapped.row, mapped.secrets)) == canonical_json(value)


def test_preferences_ids_differ_between_users_and_from_drafts() -> None:
    ids = {
        PREFERENCES.map([{}], key="user-preferences", user_id=user, migrated_at=MIGRATED_AT)[0].row["id"]  # type: ignore[index]
        for user in ("alice", "bob")
    }
    ids.add(map_draft({}, key="user-preferences-form").row["id"])  # type: ignore[index]
    assert len(ids) == 3


def test_preferences_that_are_not_an_object_are_a_source_error() -> None:
    # A Zustand state is an object by definition: the envelope refuses anything else.
    with pytest.raises(SourceError) as caught:
        PREFERENCES.extract("user-preferences", json.dumps({"state": ["dark"], "version": 0}))
    assert (caught.value.key, caught.value.code) == ("user-preferences", "wrong_shape")
