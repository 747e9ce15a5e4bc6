"""The built-in stores, finding a key's store, and what a store spec refuses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any, ClassVar

import pytest
from marshmallow import fields, post_load, pre_load, validates, validates_schema

from lsmigrate.demo.stores import DEMO_STORES as BUILTIN_STORES
from lsmigrate.demo.stores import DRAFT_KEY_PATTERN, STORES
from lsmigrate.demo.stores.documents import FormDraftSchema
from lsmigrate.demo.stores.tasks import TaskSchema
from lsmigrate.shared.canonical import digest
from lsmigrate.shared.envelopes import BARE
from lsmigrate.shared.fields import Text
from lsmigrate.shared.mapping import RecordSchema
from lsmigrate.shared.stores import OWN_KEY_PREFIX, StoreCatalog, StoreSpec

DRAFT_KEYS = [
    "form-draft-1",
    "react-hook-form-task-form",
    "taskFormDraft",
    "FORM_DRAFT",
    "drafts",
    "formData",
    "form",
    "draft",
    "Forms",
    "contactForm",
    "checkout_form_v2",
    "FORMS",
    "app.draft.42",
]
OTHER_KEYS = [
    "platform-settings",
    "PLATFORM_SETTINGS",
    "formula",
    "Formula",
    "FORMULA_BAR",
    "transformer",
    "performance-log",
    "information",
    "uniform",
    "draftsman",
    "DRAFTSMAN",
    "theme",
    "",
    "lsmigrate:backup",
    "lsmigrate:form-draft-1",
]


@pytest.mark.parametrize("key", DRAFT_KEYS)
def test_keys_that_look_like_form_drafts_are_drafts(key: str) -> None:
    assert re.search(DRAFT_KEY_PATTERN, key)
    assert STORES.spec_for_key(key) is STORES.named("form_drafts")


@pytest.mark.parametrize("key", OTHER_KEYS)
def test_keys_with_form_inside_another_word_are_not_drafts(key: str) -> None:
    assert STORES.spec_for_key(key) is None


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_draft_pattern_means_the_same_in_javascript() -> None:
    # The loader tests keys with this very pattern before it downloads anything.
    script = (
        "const [p, keys] = JSON.parse(process.argv[1]);"
        "console.log(JSON.stringify(keys.map(k => new RegExp(p).test(k))))"
    )
    keys = DRAFT_KEYS + OTHER_KEYS
    output = subprocess.run(
        ["node", "-e", script, json.dumps([DRAFT_KEY_PATTERN, keys])], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(output) == [re.search(DRAFT_KEY_PATTERN, key) is not None for key in keys]


@pytest.mark.parametrize(
    ("key", "store"),
    [
        ("task-store", "tasks"),
        ("environments", "environments"),
        ("user-preferences", "user_preferences"),
        ("form-draft-1", "form_drafts"),
        ("task-store-form", "form_drafts"),
        ("Task-Store", None),
        ("task-store ", None),
        (f"{OWN_KEY_PREFIX}task-store", None),
    ],
)
def test_the_builtin_stores_claim_their_keys(key: str, store: str | None) -> None:
    found = STORES.spec_for_key(key)
    assert (found.name if found else None) == store


def test_the_builtin_stores() -> None:
    assert [spec.name for spec in STORES] == ["tasks", "environments", "user_preferences", "form_drafts"]
    assert len(STORES) == len(BUILTIN_STORES)
    assert STORES.named("environments").secret_fields == frozenset({"githubToken"})
    assert STORES.key_rules() == {
        "keys": ["environments", "task-store", "user-preferences"],
        "patterns": [DRAFT_KEY_PATTERN],
        "ignore_prefix": [OWN_KEY_PREFIX],
        "parts": STORES.key_rules()["parts"],
    }
    assert STORES.key_rules()["parts"]["key:task-store"] == {
        "loader": "json",
        "stores": [
            {"name": "tasks", "steps": ["state", "tasks"], "shape": "array", "bare_array": False, "without": None}
        ],
    }
    described = STORES.named("environments").describe()
    assert described["secret_fields"] == ["githubToken"]
    assert described["envelope"]["name"] == "zustand"
    json.dumps([spec.describe() for spec in STORES])
    with pytest.raises(KeyError):
        STORES.named("nope")


def test_the_catalog_describes_its_specs_with_a_version() -> None:
    assert STORES.describe() == [spec.describe() for spec in STORES]
    assert STORES.version() == digest(STORES.describe())
    asked = STORES.describe({"tasks": "ask"})
    assert asked[0] == {**STORES.named("tasks").describe(), "conflict_policy": "ask"}
    assert asked[1:] == STORES.describe()[1:]
    assert STORES.version({"tasks": "ask"}) != STORES.version()
    assert STORES.version({"tasks": STORES.named("tasks").conflict_policy}) == STORES.version()


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ({"notes": "ask"}, "conflict policies for stores not in the catalog: ['notes']"),
        ({"tasks": "coin_toss"}, "conflict policies of ['tasks'] must be one of"),
    ],
)
def test_a_catalog_refuses_policies_it_cannot_apply(policies: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        STORES.describe(policies)


def draft_spec(name: str = "drafts", **overrides: Any) -> StoreSpec:
    fields_: dict[str, Any] = {
        "key_pattern": DRAFT_KEY_PATTERN,
        "envelope": BARE,
        "one_record": True,
        "id_field": None,
        "table": "form_drafts",
    }
    return StoreSpec(name=name, schema=FormDraftSchema(), **{**fields_, **overrides})


def task_spec(name: str = "tasks", **overrides: Any) -> StoreSpec:
    fields_: dict[str, Any] = {"key": "task-store", "records_path": "tasks", "table": "tasks", "schema": TaskSchema()}
    return StoreSpec(name=name, **{**fields_, **overrides})


def test_an_exact_key_wins_over_a_pattern_declared_first() -> None:
    exact = task_spec("task_form", key="task-form")
    catalog = StoreCatalog([draft_spec(), exact])
    assert catalog.spec_for_key("task-form") is exact
    assert catalog.spec_for_key("other-form").name == "drafts"  # type: ignore[union-attr]


def test_patterns_are_tried_in_order() -> None:
    first, second = draft_spec("first", key_pattern="^a"), draft_spec("second", key_pattern="b$")
    catalog = StoreCatalog([first, second])
    assert catalog.spec_for_key("ab") is first
    assert catalog.spec_for_key("xb") is second
    assert catalog.spec_for_key("x") is None
    assert catalog.key_rules()["patterns"] == ["^a", "b$"]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([task_spec("a"), task_spec("a", key="other")], "store names must be unique; repeated: ['a']"),
        (
            [task_spec("a"), task_spec("b")],
            "stores 'a' and 'b' both claim 'tasks' of key 'task-store': each part of a key belongs to one store",
        ),
        ([draft_spec("d"), draft_spec("d")], "store names must be unique; repeated: ['d']"),
    ],
)
def test_a_catalog_refuses_repeated_names_and_keys(specs: list[StoreSpec], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        StoreCatalog(specs)


class NotASourceFieldSchema(RecordSchema):
    title = fields.String()


class PreLoadSchema(RecordSchema):
    title = Text()

    @pre_load
    def strip(self, data: Any, **kwargs: Any) -> Any:
        return data


class PostLoadSchema(RecordSchema):
    title = Text()

    @post_load
    def make(self, data: Any, **kwargs: Any) -> Any:
        return data


class SchemaValidatorSchema(RecordSchema):
    title = Text()

    @validates_schema
    def check(self, data: Any, **kwargs: Any) -> None:
        pass


class FieldValidatorSchema(RecordSchema):
    title = Text()

    @validates("title")
    def check(self, value: Any, **kwargs: Any) -> None:
        pass


class ReservedMetadataSchema(RecordSchema):
    metadata_fields: ClassVar[tuple[str, ...]] = ("messages", "extra")


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"key_pattern": "form"}, ValueError, "store 'tasks': give exactly one of key and key_pattern"),
        ({"key": None}, ValueError, "store 'tasks': give exactly one of key and key_pattern"),
        ({"conflict_policy": "last_write_wins"}, ValueError, "conflict_policy must be one of newest_wins, keep_server"),
        ({"upgrades": {2: lambda state: state}}, ValueError, "store 'tasks': upgrades [2] are above version 1"),
        ({"key": None, "key_pattern": "(unclosed"}, re.error, "missing \\)"),
        ({"schema": NotASourceFieldSchema()}, TypeError, "NotASourceFieldSchema.title is a String, not a SourceField"),
        ({"schema": PreLoadSchema()}, TypeError, "PreLoadSchema has load hooks"),
        ({"schema": PostLoadSchema()}, TypeError, "PostLoadSchema has load hooks"),
        ({"schema": SchemaValidatorSchema()}, TypeError, "SchemaValidatorSchema has load hooks"),
        # A field validator belongs on the field (validate=...), where the mapping runs it.
        ({"schema": FieldValidatorSchema()}, TypeError, "FieldValidatorSchema has load hooks"),
        ({"schema": ReservedMetadataSchema()}, TypeError, "metadata_fields uses reserved names ['extra']"),
    ],
)
def test_a_store_spec_refuses_what_it_cannot_honour(overrides: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message) if error is not re.error else message):
        task_spec(version=1, **overrides)


def test_a_spec_can_be_keyed_by_a_pattern() -> None:
    spec = draft_spec()
    assert spec.matches("form-draft-1") and not spec.matches("formula")
    assert task_spec().matches("task-store") and not task_spec().matches("task-store-2")
