"""Store catalogs declared in .json and .toml files, their start-up errors, and the new field types."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lsmigrate.shared.declared import CatalogError, catalog_from_document, catalog_from_file, catalog_from_text
from lsmigrate.shared.documents import DocumentSchema
from lsmigrate.shared.envelopes import BARE, REDUX_PERSIST
from lsmigrate.shared.fields import (
    AnyJson,
    Date,
    Flag,
    Integer,
    JsonArray,
    JsonObject,
    Number,
    Secret,
    Text,
    Timestamp,
)
from lsmigrate.shared.mapping import RecordSchema
from lsmigrate.shared.stores import StoreCatalog, StoreSpec

MIGRATED_AT = datetime(2026, 1, 1, tzinfo=UTC)

CATALOG_JSON = {
    "stores": [
        {
            "name": "todos",
            "key": "persist:root",
            "envelope": "redux-persist",
            "path": "todos.items",
            "version": 3,
            "table": "todos",
            "fields": {
                "title": "text",
                "done": "boolean",
                "priority": "integer",
                "estimate": "number",
                "dueDate": "date",
                "tags": "array",
                "meta": "object",
                "extra": "json",
                "projectId": "text",
                "token": "secret",
            },
            "columns": {"title": "label"},
            "references": {"projectId": "projects"},
            "conflict_policy": "keep_server",
            "cleanup": "keep",
        },
        {"name": "projects", "key_pattern": "^projects:", "envelope": "bare", "fields": {"name": "text"}},
        {"name": "settings", "key": "settings", "shape": "one"},
    ]
}

CATALOG_TOML = """
[[stores]]
name = "todos"
key = "persist:root"
envelope = "redux-persist"
path = "todos.items"
version = 3
table = "todos"
references = { projectId = "projects" }
conflict_policy = "keep_server"
cleanup = "keep"

[stores.fields]
title = "text"
done = "boolean"
priority = "integer"
estimate = "number"
dueDate = "date"
tags = "array"
meta = "object"
extra = "json"
projectId = "text"
token = "secret"

[stores.columns]
title = "label"

[[stores]]
name = "projects"
key_pattern = "^projects:"
envelope = "bare"
fields = { name = "text" }

[[stores]]
name = "settings"
key = "settings"
shape = "one"
"""


class TodoSchema(RecordSchema):
    label = Text(data_key="title")
    done = Flag(data_key="done")
    priority = Integer(data_key="priority")
    estimate = Number(data_key="estimate")
    due_date = Date(data_key="dueDate")
    tags = JsonArray(data_key="tags")
    meta = JsonObject(data_key="meta")
    extra = AnyJson(data_key="extra")
    project_id = Text(data_key="projectId")
    token = Secret(data_key="token")
    updated_at = Timestamp(data_key="updatedAt")


class ProjectSchema(DocumentSchema):
    name = Text(data_key="name")
    updated_at = Timestamp(data_key="updatedAt")


PYTHON_CATALOG = StoreCatalog(
    [
        StoreSpec(
            name="todos",
            schema=TodoSchema(),
            table="todos",
            key="persist:root",
            envelope=REDUX_PERSIST,
            records_path="todos.items",
            version=3,
            references={"projectId": "projects"},
            conflict_policy="keep_server",
            cleanup="keep",
        ),
        StoreSpec(name="projects", schema=ProjectSchema(), key_pattern="^projects:", envelope=BARE),
        StoreSpec(name="settings", key="settings", one_record=True, id_field=None, timestamp_field=None),
    ]
)

TODOS = [
    {
        "id": "t1",
        "title": "Ship it",
        "done": "true",
        "priority": "2",
        "estimate": 1.5,
        "dueDate": 1767225600000,
        "tags": ["a"],
        "meta": {"x": 1},
        "extra": [1, {"y": None}],
        "projectId": "p1",
        "token": "ghp_abcdefghijklmnop",
        "updatedAt": "2025-12-01T10:00:00.000Z",
        "unknown": {"kept": True},
    },
    {"id": "t2", "title": "Plain", "priority": 3.0, "estimate": "4.25", "done": False},
    {"id": "t3", "priority": "high"},
]
RAW = {
    "persist:root": json.dumps(
        {"todos": json.dumps({"items": TODOS}), "_persist": json.dumps({"version": 3, "rehydrated": True})}
    ),
    "projects:work": json.dumps([{"id": "p1", "name": "Work", "updatedAt": "2025-11-01T00:00:00.000Z"}]),
    "settings": json.dumps({"state": {"theme": "dark"}, "version": 0}),
}


def _mapped(catalog: StoreCatalog) -> dict[str, list[dict[str, Any]]]:
    mapped = {}
    for key, raw in RAW.items():
        spec = catalog.spec_for_key(key)
        assert spec is not None, key
        records = spec.extract(key, raw).records
        mapped[key] = [
            outcome.as_dict() for outcome in spec.map(records, key=key, user_id="u1", migrated_at=MIGRATED_AT)
        ]
    return mapped


@pytest.fixture
def declared(tmp_path: Path) -> tuple[StoreCatalog, StoreCatalog]:
    (tmp_path / "stores.json").write_text(json.dumps(CATALOG_JSON), encoding="utf-8")
    (tmp_path / "stores.toml").write_text(CATALOG_TOML, encoding="utf-8")
    return catalog_from_file(tmp_path / "stores.json"), catalog_from_file(str(tmp_path / "stores.toml"))


def test_json_toml_and_python_catalogs_describe_alike(declared: tuple[StoreCatalog, StoreCatalog]) -> None:
    from_json, from_toml = declared
    assert from_json.describe() == from_toml.describe() == PYTHON_CATALOG.describe()
    assert from_json.version() == PYTHON_CATALOG.version()
    assert catalog_from_text(CATALOG_TOML, ".toml", "stores.toml").describe() == PYTHON_CATALOG.describe()


def test_json_toml_and_python_catalogs_map_alike(declared: tuple[StoreCatalog, StoreCatalog]) -> None:
    from_json, from_toml = declared
    mapped = _mapped(from_json)
    assert mapped == _mapped(from_toml) == _mapped(PYTHON_CATALOG)
    first, second, third = mapped["persist:root"]
    assert first["row"]["label"] == "Ship it" and first["row"]["priority"] == 2 and first["row"]["done"] is True
    assert first["row"]["updated_at"] == "2025-12-01T10:00:00.000000+00:00"
    assert {"code": "number_from_text", "field": "priority"} in first["warnings"]
    assert first["secrets"] == ["token"] and "ghp_abcdefghijklmnop" not in json.dumps(first)
    assert first["row"]["metadata"]["extra"] == {"unknown": {"kept": True}}
    assert second["row"]["priority"] == 3 and second["row"]["estimate"] == 4.25
    assert third["reasons"] == [
        {"code": "wrong_type", "field": "priority", "message": "expected an integer, found string"}
    ]
    project = mapped["projects:work"][0]["row"]
    assert project["data"] == {"id": "p1", "name": "Work", "updatedAt": "2025-11-01T00:00:00.000Z"}
    assert mapped["settings"][0]["row"]["data"] == {"theme": "dark"}


def test_declared_rows_rebuild_their_records(declared: tuple[StoreCatalog, StoreCatalog]) -> None:
    spec = declared[0].named("todos")
    outcomes = spec.map(TODOS[:2], key="persist:root", user_id="u1", migrated_at=MIGRATED_AT)
    for record, outcome in zip(TODOS, outcomes, strict=False):
        assert outcome.row is not None
        assert spec.rebuild(outcome.row, outcome.secrets) == record


def test_the_generic_table_keeps_records_whole_and_host_tables_do_not(
    declared: tuple[StoreCatalog, StoreCatalog],
) -> None:
    catalog = declared[0]
    assert catalog.named("projects").schema.document_column == "data"
    assert catalog.named("projects").table is None
    assert catalog.named("todos").schema.document_column is None
    assert catalog.named("settings").id_field is None and catalog.named("settings").timestamp_field is None


STORE = {"name": "todos", "key": "todos", "table": "todos", "fields": {"title": "text", "projectId": "text"}}
OTHER = {"name": "projects", "key": "projects"}
DROP = object()


def _with(**changes: Any) -> dict[str, Any]:
    """A catalog of STORE changed by `changes` (DROP removes a setting) and OTHER."""
    store = {name: value for name, value in {**STORE, **changes}.items() if value is not DROP}
    return {"stores": [store, OTHER]}


TODOS_STORE = "store 'todos'"
# (id, document, the store the message names, the setting it names, the rest of the message: a regex)
MISTAKES = [
    ("unknown-setting", _with(colour="red"), TODOS_STORE, "colour", "unknown setting; the settings are name, key, "),
    ("missing-name", _with(name=DROP), "stores[0]", "name", "expected a name of letters, .*; found nothing"),
    ("bad-name", _with(name="1st"), "stores[0]", "name", "expected a name .*starts with a letter .*; found '1st'"),
    ("name-type", _with(name=["x"]), "stores[0]", "name", "expected a name .*; found array"),
    ("key-and-pattern", _with(key_pattern="^t"), TODOS_STORE, "key_pattern", "expected exactly one .*, found both"),
    ("no-key", _with(key=DROP), TODOS_STORE, "key", "expected exactly one of 'key' and 'key_pattern', found neither"),
    ("empty-key", _with(key=""), TODOS_STORE, "key", "expected a non-empty string, found ''"),
    ("key-type", _with(key=7), TODOS_STORE, "key", "expected a non-empty string, found number"),
    ("own-key", _with(key="lsmigrate:x"), TODOS_STORE, "key", "expected a key outside lsmigrate's own 'lsmigrate:'"),
    ("bad-regex", _with(key=DROP, key_pattern="(a"), TODOS_STORE, "key_pattern", r"expected a regular .*'\(a' \("),
    ("regex-A", _with(key=DROP, key_pattern=r"\Atodo"), TODOS_STORE, "key_pattern", r".*JavaScript .*uses \\A \("),
    ("regex-Z", _with(key=DROP, key_pattern=r"todo\Z"), TODOS_STORE, "key_pattern", r".*uses \\Z \(Python only\)"),
    ("regex-named", _with(key=DROP, key_pattern="(?P<x>t)"), TODOS_STORE, "key_pattern", r".*uses \(\?P<"),
    ("regex-reference", _with(key=DROP, key_pattern="(t)(?P=x)"), TODOS_STORE, "key_pattern", "expected a regular"),
    ("regex-named-reference", _with(key=DROP, key_pattern=r"(?P<x>t)\1"), TODOS_STORE, "key_pattern", r".*\(\?P<"),
    ("regex-comment", _with(key=DROP, key_pattern="t(?#note)"), TODOS_STORE, "key_pattern", r".*uses \(\?#"),
    ("regex-flags", _with(key=DROP, key_pattern="(?i)todo"), TODOS_STORE, "key_pattern", ".*uses inline flags"),
    ("regex-scoped-flags", _with(key=DROP, key_pattern="(?i:to)do"), TODOS_STORE, "key_pattern", ".*inline flags"),
    ("regex-possessive", _with(key=DROP, key_pattern="to++"), TODOS_STORE, "key_pattern", ".*a possessive quantifier"),
    ("regex-possessive-star", _with(key=DROP, key_pattern="[a-z]*+x"), TODOS_STORE, "key_pattern", ".*possessive"),
    ("regex-possessive-optional", _with(key=DROP, key_pattern="o?+"), TODOS_STORE, "key_pattern", ".*possessive"),
    ("regex-possessive-count", _with(key=DROP, key_pattern="o{2}+"), TODOS_STORE, "key_pattern", ".*possessive"),
    ("regex-conditional", _with(key=DROP, key_pattern="(t)?(?(1)a|b)"), TODOS_STORE, "key_pattern", r".*\(\?\("),
    ("regex-unicode-name", _with(key=DROP, key_pattern=r"\N{EM DASH}"), TODOS_STORE, "key_pattern", r".*uses \\N"),
    ("regex-long-unicode", _with(key=DROP, key_pattern=r"\U0001F600"), TODOS_STORE, "key_pattern", r".*uses \\U"),
    ("regex-up-to", _with(key=DROP, key_pattern="to{,2}"), TODOS_STORE, "key_pattern", r".*a \{,n\} quantifier"),
    ("regex-empty-class", _with(key=DROP, key_pattern="[]x]"), TODOS_STORE, "key_pattern", ".*a ] first in a"),
    ("regex-any-class", _with(key=DROP, key_pattern="[^]x]"), TODOS_STORE, "key_pattern", ".*a ] first in a"),
    ("regex-atomic", _with(key=DROP, key_pattern="(?>to)do"), TODOS_STORE, "key_pattern", r".*uses \(\?>"),
    (
        "unknown-envelope",
        _with(envelope="jsonx"),
        TODOS_STORE,
        "envelope",
        "expected one of zustand, redux-persist, bare, superjson, mobx-persist-store, tanstack-query; found 'jsonx'",
    ),
    (
        "unknown-shape",
        _with(shape="rows"),
        TODOS_STORE,
        "shape",
        "expected one of array, by_id, entity_adapter, entries, one, scalar; found 'rows'",
    ),
    ("bad-path", _with(path="a..b"), TODOS_STORE, "path", r"expected a path \(a name after the dot at position 1\)"),
    (
        "path-selector-unclosed",
        _with(path='queries[queryKey=["todos"].data'),
        TODOS_STORE,
        "path",
        r"expected a path \(']' closing the \[field=value\] step at position 26\)",
    ),
    (
        "path-selector-value",
        _with(path="queries[queryKey=todos].data"),
        TODOS_STORE,
        "path",
        r"expected a path \(a JSON value after 'queryKey=' at position 17\)",
    ),
    ("path-type", _with(path=None), TODOS_STORE, "path", "expected a path, found null"),
    (
        "version-path",
        _with(version_path="a..b"),
        TODOS_STORE,
        "version_path",
        "expected names separated by dots, found 'a..b'",
    ),
    ("id-field-type", _with(id_field=3), TODOS_STORE, "id_field", "expected a field name, null or false; found number"),
    (
        "unknown-field-type",
        _with(fields={"title": "blob"}),
        TODOS_STORE,
        "fields",
        "field 'title': expected one of text, boolean, integer, number, date, timestamp, object, array, json, secret; "
        "found 'blob'",
    ),
    ("field-type-type", _with(fields={"title": 1}), TODOS_STORE, "fields", "field 'title': expected one of .*number$"),
    ("fields-type", _with(fields=["title"]), TODOS_STORE, "fields", "expected an object of field types, found array"),
    (
        "id-field-declared",
        _with(fields={"id": "text"}),
        TODOS_STORE,
        "fields",
        "expected fields other than the id_field 'id', found 'id'",
    ),
    (
        "timestamp-not-a-date",
        _with(fields={"updatedAt": "text"}),
        TODOS_STORE,
        "fields",
        "field 'updatedAt': expected timestamp for the timestamp_field, found 'text'",
    ),
    (
        "columns-without-table",
        _with(table=DROP, columns={"title": "label"}),
        TODOS_STORE,
        "columns",
        "expected a 'table' whose columns they name, found no table",
    ),
    (
        "columns-undeclared-field",
        _with(columns={"body": "text"}),
        TODOS_STORE,
        "columns",
        "expected a field declared in 'fields', found 'body'",
    ),
    (
        "duplicate-column",
        _with(columns={"projectId": "title"}),
        TODOS_STORE,
        "columns",
        "field 'projectId': expected a column no other field has, found 'title', the column of field 'title' too",
    ),
    (
        "duplicate-snake-case-column",
        _with(fields={"project_id": "text", "projectId": "text"}),
        TODOS_STORE,
        "fields",
        "field 'projectId': expected a column no other field has, found 'project_id', the column of field",
    ),
    (
        "secret-hint-column",
        _with(fields={"token": "secret", "tokenHint": "text"}),
        TODOS_STORE,
        "fields",
        "field 'tokenHint': expected a column no other field has, found 'token_hint', the column of field 'token'",
    ),
    (
        "reserved-column",
        _with(columns={"title": "user_id"}),
        TODOS_STORE,
        "columns",
        "field 'title': expected a column other than lsmigrate's own id, user_id, metadata, source_digest, "
        "migration_session_id; found 'user_id'",
    ),
    ("reserved-field", _with(fields={"metadata": "json"}), TODOS_STORE, "fields", "field 'metadata': .*lsmigrate's"),
    (
        "data-in-generic-table",
        _with(table=DROP, fields={"data": "json"}),
        TODOS_STORE,
        "fields",
        "field 'data': expected a column other than .*, data; found 'data'",
    ),
    (
        "column-not-identifier",
        _with(columns={"title": "label-1"}),
        TODOS_STORE,
        "columns",
        "field 'title': expected a column that is a SQL identifier, found 'label-1'",
    ),
    (
        "column-type",
        _with(columns={"title": 1}),
        TODOS_STORE,
        "columns",
        "field 'title': expected a column name, found",
    ),
    ("bad-table", _with(table="todo list"), TODOS_STORE, "table", "expected a SQL .*schema.table; found 'todo list'"),
    (
        "reference-to-unknown-store",
        _with(references={"projectId": "folders"}),
        TODOS_STORE,
        "references",
        "field 'projectId': expected one of this catalog's stores todos, projects; found 'folders'",
    ),
    (
        "reference-on-undeclared-field",
        _with(references={"folderId": "projects"}),
        TODOS_STORE,
        "references",
        "field 'folderId': expected a text or integer field declared in 'fields', found a field not in 'fields'",
    ),
    (
        "reference-on-json-field",
        _with(fields={"projectId": "json"}, references={"projectId": "projects"}),
        TODOS_STORE,
        "references",
        "field 'projectId': expected a text or integer field .*, found 'json'",
    ),
    ("negative-version", _with(version=-1), TODOS_STORE, "version", "expected a non-negative integer, found -1"),
    ("bool-version", _with(version=True), TODOS_STORE, "version", "expected a non-negative integer, found boolean"),
    ("text-version", _with(version="3"), TODOS_STORE, "version", "expected a non-negative integer, found '3'"),
    (
        "unknown-policy",
        _with(conflict_policy="merge"),
        TODOS_STORE,
        "conflict_policy",
        "expected one of newest_wins, keep_server, keep_local, ask; found 'merge'",
    ),
    (
        "unknown-cleanup",
        _with(cleanup="wipe"),
        TODOS_STORE,
        "cleanup",
        "expected one of strip, delete, keep; found 'wipe'",
    ),
    (
        "duplicate-name",
        {"stores": [STORE, {**OTHER, "name": "todos"}]},
        "stores[1]",
        "name",
        r"expected a name no other store has, found 'todos', the name of stores\[0\] too",
    ),
    (
        "duplicate-key",
        {"stores": [STORE, {**OTHER, "key": "todos"}]},
        "store 'projects'",
        "path",
        "stores 'todos' and 'projects' both claim all of key 'todos': each part of a key belongs to one store",
    ),
]


@pytest.mark.parametrize(
    ("document", "store", "setting", "message"), [pytest.param(*case[1:], id=case[0]) for case in MISTAKES]
)
def test_a_mistake_names_the_file_the_store_and_the_setting(
    tmp_path: Path, document: Any, store: str, setting: str, message: str
) -> None:
    path = tmp_path / "stores.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    named = re.escape(f"stores.json: {store}: setting {setting!r}: ") + message
    with pytest.raises(CatalogError, match=named):
        catalog_from_file(path)
    with pytest.raises(CatalogError, match=f"^{named}"):
        catalog_from_document(document, "stores.json")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([STORE], "expected an object holding 'stores' at the top level, found array"),
        ({"stores": [STORE], "version": 1}, "unknown top-level setting 'version'; the only one is 'stores'"),
        ({}, "setting 'stores': expected an array of one store or more, found nothing"),
        ({"stores": []}, "setting 'stores': expected an array of one store or more, found an empty array"),
        ({"stores": {"todos": STORE}}, "setting 'stores': expected an array of one store or more, found object"),
        ({"stores": [STORE, 3]}, "stores[1]: expected an object of settings, found number"),
    ],
)
def test_a_mistake_outside_the_stores_names_the_file(document: Any, message: str) -> None:
    with pytest.raises(CatalogError, match=f"^{re.escape(f'stores.json: {message}')}$"):
        catalog_from_document(document, "stores.json")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("stores.json", '{"stores": [\n  {"name": "a",\n   "key": }]}', r"not valid JSON: .* \(at line 3, column 11\)"),
        ("stores.json", '{"stores": [{"name": "a", "key": "a", "name": "b"}]}', "'name' is set twice in one object"),
        ("stores.json", '{"stores": [{"name": "a", "key": "a", "version": NaN}]}', "not valid JSON: NaN"),
        ("stores.toml", '[[stores]]\nname = "a"\nkey = \n', r"not valid TOML: .*line 3"),
        ("stores.toml", '[[stores]]\nname = "a"\nkey = "a"\nkey = "b"\n', r"not valid TOML: .*line 4"),
        ("stores.toml", '[[stores]]\nname = "a"\nshape = "rows"\nkey = "a"\n', "store 'a': setting 'shape': expected"),
        ("stores.yaml", "stores: []", r"expected a \.json or \.toml catalog, found '\.yaml'"),
        ("stores", "{}", r"expected a \.json or \.toml catalog, found 'no suffix'"),
    ],
)
def test_a_file_that_does_not_parse_is_named_with_the_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(f"{path}: ") + message):
        catalog_from_file(path)
    with pytest.raises(CatalogError, match=re.escape(f"{name}: ") + message):
        catalog_from_text(text, path.suffix, name)


def test_a_missing_or_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=re.escape(f"{tmp_path / 'absent.toml'}: cannot read the catalog: ")):
        catalog_from_file(tmp_path / "absent.toml")
    (tmp_path / "latin.json").write_bytes(b'{"stores": "\xe9"}')
    with pytest.raises(CatalogError, match=r"latin\.json: expected UTF-8 text"):
        catalog_from_file(tmp_path / "latin.json")


@pytest.mark.parametrize(
    "pattern",
    [
        r"^form-",
        r"[+*]+x",
        r"\\A",
        r"(?:ab)+",
        r"(?<=x)y(?!z)",
        r"o{2}",
        r"[(?i)]",
        r"a+?",
        r"[\]+]+",
        r"x\}+",
        r"a{2,}b{1,3}",
    ],
)
def test_regular_expressions_javascript_reads_are_accepted(pattern: str) -> None:
    catalog = catalog_from_document({"stores": [{"name": "s", "key_pattern": pattern}]}, "stores.json")
    assert catalog.named("s").key_pattern == pattern


def test_defaults_and_self_references() -> None:
    catalog = catalog_from_document(
        {
            "stores": [
                {"name": "nodes", "key": "nodes", "fields": {"parent": "integer"}, "references": {"parent": "nodes"}}
            ]
        },
        "stores.json",
    )
    described = catalog.named("nodes").describe()
    assert described["envelope"]["name"] == "zustand" and described["records_path"] == ""
    assert described["shape"] == "array" and described["cleanup"] == "strip"
    assert (described["id_field"], described["timestamp_field"], described["version"]) == ("id", "updatedAt", 0)
    assert (described["conflict_policy"], described["cleanup"], described["table"]) == ("newest_wins", "strip", None)
    assert described["references"] == {"parent": "nodes"}
    assert described["fields"] == [
        ["parent", "parent", "Integer"],
        ["updatedAt", "updated_at", "Timestamp"],
        ["", "data", "document"],
    ]


def test_snake_case_columns_and_a_renamed_timestamp() -> None:
    store = {
        "name": "t",
        "key": "t",
        "table": "app.items",
        "timestamp_field": "modified",
        "fields": {"dueDate": "date", "HTMLTitle": "text", "createdAt": "timestamp", "modified": "timestamp"},
        "columns": {"modified": "changed_at"},
    }
    spec = catalog_from_document({"stores": [store]}, "stores.json").named("t")
    assert [column for _, column, _ in spec.mapper.describe()] == ["due_date", "html_title", "created_at", "changed_at"]


# (field type, source value, column value, exact, warning code)
CONVERSIONS = [
    ("integer", 3, 3, True, None),
    ("integer", -7, -7, True, None),
    ("integer", 3.0, 3, False, "value_converted"),
    ("integer", "42", 42, False, "number_from_text"),
    ("integer", "1e3", 1000, False, "number_from_text"),
    ("number", 3, 3, True, None),
    ("number", 2.5, 2.5, True, None),
    ("number", "2.50", 2.5, False, "number_from_text"),
    ("number", "-4", -4, False, "number_from_text"),
    ("array", [1, "a", None], [1, "a", None], True, None),
    ("array", [], [], True, None),
    ("json", {"a": [1]}, {"a": [1]}, True, None),
    ("json", "text", "text", True, None),
    ("json", False, False, True, None),
    ("json", 1.5, 1.5, True, None),
]
REFUSALS = [
    ("integer", True, "expected an integer, found boolean"),
    ("integer", 2.5, "expected an integer, found number"),
    ("integer", "2.5", "expected an integer, found string"),
    ("integer", " 4", "expected an integer, found string"),
    ("integer", "", "expected an integer, found string"),
    ("integer", "1" * 5000, "expected an integer, found string"),
    ("integer", [1], "expected an integer, found array"),
    ("number", False, "expected a number, found boolean"),
    ("number", "4,5", "expected a number, found string"),
    ("number", "1e400", "expected a number, found string"),
    ("number", {"n": 1}, "expected a number, found object"),
    ("array", {"0": 1}, "expected an array, found object"),
    ("array", "[1]", "expected an array, found string"),
]


def _one_field_spec(kind: str) -> StoreSpec:
    document = {"stores": [{"name": "s", "key": "s", "table": "t", "fields": {"value": kind}}]}
    return catalog_from_document(document, "stores.json").named("s")


@pytest.mark.parametrize(("kind", "value", "column", "exact", "warning"), CONVERSIONS)
def test_new_field_types_convert_and_rebuild(
    kind: str, value: Any, column: Any, exact: bool, warning: str | None
) -> None:
    field = {"integer": Integer, "number": Number, "array": JsonArray, "json": AnyJson}[kind]()
    converted, is_exact = field.convert(value)
    assert (converted, is_exact) == (column, exact) and type(converted) is type(column)
    if not exact:
        assert field.warning_code(value) == warning
    spec = _one_field_spec(kind)
    record = {"id": "r1", "value": value, "updatedAt": "2025-01-01T00:00:00.000Z"}
    (outcome,) = spec.map([record], key="s", user_id="u1", migrated_at=MIGRATED_AT)
    assert outcome.row is not None and outcome.row["value"] == column
    warnings = [item for item in outcome.warnings if item["field"] == "value"]
    assert warnings == ([] if exact else [{"code": warning, "field": "value"}])
    assert spec.rebuild(outcome.row, outcome.secrets) == record


@pytest.mark.parametrize(("kind", "value", "message"), REFUSALS)
def test_new_field_types_refuse_what_they_would_guess(kind: str, value: Any, message: str) -> None:
    spec = _one_field_spec(kind)
    (outcome,) = spec.map([{"id": "r1", "value": value}], key="s", user_id="u1", migrated_at=MIGRATED_AT)
    assert outcome.quarantined
    assert outcome.reasons == [{"code": "wrong_type", "field": "value", "message": message}]


@pytest.mark.parametrize("kind", ["integer", "number", "array", "json"])
def test_new_field_types_keep_null_and_absent(kind: str) -> None:
    spec = _one_field_spec(kind)
    for record in ({"id": "r1", "value": None}, {"id": "r1"}):
        (outcome,) = spec.map([record], key="s", user_id="u1", migrated_at=MIGRATED_AT)
        assert outcome.row is not None and outcome.row["value"] is None
        assert spec.rebuild(outcome.row, outcome.secrets) == record
