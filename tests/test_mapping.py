"""Secrets anywhere in a record: a schema's secret paths, in typed and document schemas alike."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.documents import DocumentSchema
from lsmigrate.shared.fields import Integer, JsonObject, Secret, Text, Timestamp
from lsmigrate.shared.mapping import MappedRecord, RecordMapper, RecordSchema

WHEN = "2026-01-02T03:04:05.000000+00:00"
TOKEN = "tok_SECRETvalue0123456789"
REFRESH = "ref_SECRETrefresh98765"
API_KEY = "key_SECRETapikey55555"
HOOK = "hook_SECRETwebhook4242"
PIN = "pin_SECRET13579"


class VaultSchema(DocumentSchema):
    """A record kept whole, with secrets inside it."""

    secret_paths = ("auth.token", "session.refresh")


class ProfileSchema(RecordSchema):
    """Typed, with secrets in a JSON column, in metadata, in the unknown fields and at the top."""

    metadata_fields = ("prefs",)
    secret_paths = ("settings.webhook.secret", "auth.token", "prefs.pin", "pat")

    name = Text(data_key="name")
    settings = JsonObject(data_key="settings")
    api_key = Secret(data_key="apiKey")
    priority = Integer(data_key="priority")
    updated_at = Timestamp(data_key="updatedAt")


VAULT = RecordMapper(VaultSchema(), "vaults", "id")
PROFILE = RecordMapper(ProfileSchema(), "profiles", "id")
SECRET_VALUES = (TOKEN, REFRESH, API_KEY, HOOK, PIN)


def map_with(mapper: RecordMapper, record: Any) -> MappedRecord:
    return mapper.map(record, key="k", index=0, user_id="alice", migrated_at=WHEN)


def in_clear(mapped: MappedRecord) -> str:
    """Everything a mapped record keeps or says in clear."""
    return json.dumps([mapped.row, mapped.warnings, mapped.reasons, mapped.as_dict()])


def test_a_documents_secrets_are_taken_out_of_the_document_and_put_back() -> None:
    record = {
        "id": "v1",
        "title": "Mine",
        "auth": {"token": TOKEN, "user": "ann"},
        "session": {"refresh": {"value": REFRESH, "expires": 3}},
    }
    source = copy.deepcopy(record)
    mapped = map_with(VAULT, record)
    assert record == source  # the source record is never changed
    assert mapped.row is not None
    assert mapped.row["data"] == {"id": "v1", "title": "Mine", "auth": {"user": "ann"}, "session": {}}
    assert mapped.secrets == {"auth.token": TOKEN, "session.refresh": {"value": REFRESH, "expires": 3}}
    assert mapped.as_dict()["secrets"] == ["auth.token", "session.refresh"]
    assert not any(secret in in_clear(mapped) for secret in SECRET_VALUES)
    assert canonical_json(VAULT.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)
    assert mapped.row["data"] == {"id": "v1", "title": "Mine", "auth": {"user": "ann"}, "session": {}}  # unchanged
    # Without its secrets the record comes back without them.
    assert VAULT.rebuild(mapped.row, {}) == mapped.row["data"]


class LockerSchema(DocumentSchema):
    """A record kept whole whose top-level secret is a Secret field (its hint in a column)."""

    secret_paths = ("auth.token",)

    pin = Secret(data_key="pin")


def test_a_documents_secret_field_is_not_kept_in_the_document_either() -> None:
    mapper = RecordMapper(LockerSchema(), "lockers", "id")
    record = {"id": "l1", "pin": PIN, "auth": {"token": TOKEN}}
    mapped = map_with(mapper, record)
    assert mapped.row is not None
    assert mapped.row["data"] == {"id": "l1", "auth": {}}
    assert mapped.row["pin_hint"] == "…"  # shorter than 20 characters: nothing of it shown
    assert mapped.secrets == {"pin": PIN, "auth.token": TOKEN}
    assert not any(secret in in_clear(mapped) for secret in SECRET_VALUES)
    assert canonical_json(mapper.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)
    assert mapper.secret_paths == frozenset({"pin", "auth.token"})
    without = map_with(mapper, {"id": "l2", "pin": None})
    assert without.row is not None and without.row["data"] == {"id": "l2", "pin": None} and without.secrets == {}


@pytest.mark.parametrize(
    "record",
    [
        {"id": "v1"},
        {"id": "v1", "auth": "a string"},
        {"id": "v1", "auth": None},
        {"id": "v1", "auth": [{"token": TOKEN}]},
        {"id": "v1", "auth": {"token": None}},
        {"id": "v1", "auth": {}, "session": 5},
        {"id": "v1", "auth.token": "a key with a dot is not the path"},
    ],
)
def test_a_path_that_is_absent_or_whose_parent_is_no_object_is_simply_not_there(record: dict[str, Any]) -> None:
    mapped = map_with(VAULT, record)
    assert mapped.row is not None and mapped.row["data"] == record
    assert mapped.secrets == {}
    assert canonical_json(VAULT.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)


def test_a_typed_records_secrets_leave_its_columns_metadata_and_unknown_fields() -> None:
    record = {
        "id": "p1",
        "name": "Ann",
        "settings": {"theme": "dark", "webhook": {"url": "https://example.test", "secret": HOOK}},
        "apiKey": API_KEY,
        "priority": "3",
        "auth": {"token": TOKEN, "scheme": "bearer"},
        "prefs": {"pin": PIN, "lang": "fr"},
        "pat": REFRESH,
        "updatedAt": "2025-06-09T10:00:00.000Z",
    }
    mapped = map_with(PROFILE, record)
    assert mapped.row is not None
    assert mapped.row["settings"] == {"theme": "dark", "webhook": {"url": "https://example.test"}}
    assert mapped.row["metadata"]["extra"] == {"auth": {"scheme": "bearer"}}
    assert mapped.row["metadata"]["prefs"] == {"lang": "fr"}
    assert mapped.secrets == {
        "api_key": API_KEY,
        "settings.webhook.secret": HOOK,
        "auth.token": TOKEN,
        "prefs.pin": PIN,
        "pat": REFRESH,
    }
    assert {"code": "number_from_text", "field": "priority"} in mapped.warnings
    assert not any(secret in in_clear(mapped) for secret in SECRET_VALUES)
    assert canonical_json(PROFILE.rebuild(mapped.row, mapped.secrets)) == canonical_json(record)


def test_a_quarantined_records_nested_secret_is_in_neither_its_reasons_nor_its_secrets() -> None:
    mapped = map_with(PROFILE, {"id": "p1", "priority": "high", "auth": {"token": TOKEN}, "settings": [HOOK]})
    assert mapped.quarantined
    assert [reason["field"] for reason in mapped.reasons] == ["settings", "priority"]
    assert mapped.secrets == {}
    assert not any(secret in in_clear(mapped) for secret in SECRET_VALUES)


def test_the_mapper_lists_every_secret_and_changes_them_in_any_raw_record() -> None:
    assert PROFILE.secret_paths == frozenset({"apiKey", "settings.webhook.secret", "auth.token", "prefs.pin", "pat"})
    assert VAULT.secret_paths == frozenset({"auth.token", "session.refresh"})
    raw = {"apiKey": 42, "auth": {"token": TOKEN}, "prefs": {"pin": None}, "settings": "no object", "priority": "x"}
    before = copy.deepcopy(raw)
    changed = PROFILE.change_secrets(raw, lambda value: {"$hidden": type(value).__name__})
    assert raw == before
    assert changed == {
        "apiKey": {"$hidden": "int"},
        "auth": {"token": {"$hidden": "str"}},
        "prefs": {"pin": None},
        "settings": "no object",
        "priority": "x",
    }
    assert PROFILE.change_secrets(["not", "an", "object"], str) == ["not", "an", "object"]


def test_the_secret_paths_are_part_of_what_the_mapper_describes() -> None:
    described = ["auth.token", "secrets_encrypted", "secret"]
    assert described in VAULT.describe()
    assert described not in RecordMapper(DocumentSchema(), "vaults", "id").describe()


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (("",), "'' is not a dotted path of keys"),
        (("auth..token",), "'auth..token' is not a dotted path of keys"),
        (("auth.",), "'auth.' is not a dotted path of keys"),
        (("id.part",), "'id.part' lies in the id field"),
        (("name",), "'name' is a field of the schema: make that field a Secret"),
        (("api_key",), "'api_key' is also the column of a Secret field"),
        (("auth", "auth.token"), "'auth.token' and 'auth' overlap"),
        (("auth.token", "auth.token"), "'auth.token' and 'auth.token' overlap"),
    ],
)
def test_a_secret_path_the_mapping_could_not_honour_is_refused(paths: tuple[str, ...], message: str) -> None:
    schema = type("BadSchema", (ProfileSchema,), {"secret_paths": paths})()
    with pytest.raises(TypeError, match=f"BadSchema.secret_paths: {message}"):
        RecordMapper(schema, "profiles", "id")
