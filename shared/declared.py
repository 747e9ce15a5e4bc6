"""Store catalogs declared in a `.json` or `.toml` file: any app's stores, no Python (design §10).

    CatalogError (ValueError)  a mistake in a declared catalog, found at start-up: names the file,
                               the store (by name, else `stores[2]`), the setting, what was
                               expected and what was found

JSON shown; TOML is the same with `[[stores]]` and `[stores.fields]` (having no null, it writes
false for "none" in id_field and timestamp_field):

    {"stores": [{"name": "todos", "key": "persist:root", "envelope": "redux-persist",
                 "path": "todos.items", "version": 3, "table": "todos",
                 "fields": {"title": "text", "dueDate": "date", "projectId": "text"},
                 "columns": {"title": "label"}, "references": {"projectId": "projects"}},
                {"name": "projects", "key": "projects"}]}

Store settings (any other is an error):
    name             required: a letter, then letters, digits, _ or - (63 at most); unique
    key|key_pattern  exactly one: the localStorage key, or a regex Python and JavaScript read alike
    envelope         zustand (default), redux-persist, bare, superjson, mobx-persist-store,
                     tanstack-query, or the name of one the app registered (register_envelope)
    path             where this store's part sits inside the state ("", the default: all of it): names
                     separated by dots; a step may select inside an array by a field, as in
                     clientState.queries[queryKey=["todos"]].state.data
    shape            array (default), by_id, entity_adapter, entries, one or scalar
    id_field         "id" (array, by_id, entity_adapter, entries) or null (one, scalar) by default;
                     null or false: the key identifies the record
    timestamp_field  "updatedAt" or null as id_field; column updated_at, a timestamp field;
                     null or false: conflicts have no timestamp to compare
    version          the state version the app writes now (default 0)
    version_path     where the library keeps the version, from the top of the key's value ("_persist.version");
                     by default where the envelope says
    table            a host table (`name` or `schema.name`); absent or null: lsmigrate's generic
                     table, where each record is also kept whole in `data`
    fields           {source field: text, boolean, integer, number, date (a day: "2025-06-09" stays a
                     date), timestamp (a moment, kept in UTC), object, array, json or secret}; a
                     dotted path typed secret ("auth.token") is a secret inside a field kept whole,
                     taken out and kept encrypted; the column is the snake_case name (due_date); in the generic table a
                     secret is taken out of `data` and kept encrypted
    columns          {source field: column}, host tables only
    references       {source field: store name}: a text or integer field holding such a record's id
    conflict_policy  newest_wins (default), keep_server, keep_local or ask
    cleanup          strip (default), delete or keep (lsmigrate.shared.keys.cleanup_action)
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypedDict

from lsmigrate.shared import fields
from lsmigrate.shared.documents import DocumentSchema
from lsmigrate.shared.envelopes import envelope_named, envelope_names
from lsmigrate.shared.fields import SourceField, json_type
from lsmigrate.shared.mapping import RecordSchema
from lsmigrate.shared.paths import PathError, parse_path
from lsmigrate.shared.shapes import SHAPES, SINGLE
from lsmigrate.shared.stores import CLEANUPS, CONFLICT_POLICIES, OWN_KEY_PREFIX, SharedKeyError, StoreCatalog, StoreSpec

_ABSENT: Any = object()
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
_NAME_EXPECTED = "a name of letters, digits, _ and - that starts with a letter (63 at most)"
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_COLUMN = re.compile(_IDENTIFIER)
_TABLE = re.compile(rf"(?:{_IDENTIFIER}\.)?{_IDENTIFIER}")
_VERSION_PATH = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+)*")
_FIELD_TYPES: dict[str, type[SourceField]] = dict(
    text=fields.Text, boolean=fields.Flag, integer=fields.Integer, number=fields.Number, date=fields.Date,
    timestamp=fields.Timestamp,
    object=fields.JsonObject, array=fields.JsonArray, json=fields.AnyJson, secret=fields.Secret,
)  # fmt: skip
_REFERENCE_TYPES = ("text", "integer")
#: Columns lsmigrate fills itself on every row.
_BOOKKEEPING = ("id", "user_id", "metadata", "source_digest", "migration_session_id")
_SETTINGS = (
    *("name", "key", "key_pattern", "envelope", "path", "shape", "id_field", "timestamp_field"),
    *("version", "version_path", "table", "fields", "columns", "references", "conflict_policy", "cleanup"),
)
# What Python's re reads and JavaScript's RegExp (no flags) lacks or reads otherwise.
_PYTHON_ONLY_GROUPS = ("(?P<", "(?P=", "(?#", "(?>", "(?(")
_PYTHON_ONLY_ESCAPES = "AZNU"  # \A, \Z, \N{name}, \U0001F600
_UP_TO = re.compile(r"\{,[0-9]+\}")  # Python's {,n}: a literal in JavaScript
_COUNTED = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}$")


class CatalogError(ValueError):
    """A mistake in a declared catalog: the message names the file, the store and the setting."""


def _python_only(pattern: str) -> str | None:
    """What a pattern that Python compiles uses that JavaScript reads otherwise or not at all, or None."""
    i, in_class = 0, False
    while i < len(pattern):
        char, rest = pattern[i], pattern[i + 1 :]
        if char == "\\":
            if rest[:1] and rest[0] in _PYTHON_ONLY_ESCAPES:
                return f"\\{rest[0]}"
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            if rest.removeprefix("^").startswith("]"):
                return "a ] first in a character class"  # JavaScript reads [] as a class of nothing
            in_class = True
        elif char == "(" and rest[:1] == "?":
            group = next((start for start in _PYTHON_ONLY_GROUPS if pattern.startswith(start, i)), None)
            if group is not None or (rest[1:2] and rest[1] in "aiLmsux-"):
                return group or "inline flags"
            i += 1  # past "(", and below past "?", which is no quantifier here
        elif char == "{" and _UP_TO.match(pattern, i):
            return "a {,n} quantifier"
        elif rest[:1] == "+" and (char in "*+?" or (char == "}" and _COUNTED.search(pattern, 0, i + 1))):
            return "a possessive quantifier"
        i += 1
    return None


def _found(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json_type(value)


def _snake_case(name: str) -> str:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return words.replace("-", "_").replace(" ", "_").lower()


class _Store:
    """One store's settings, read with errors that name the file, the store and the setting."""

    def __init__(self, settings: dict[str, Any], source: str, label: str) -> None:
        self.settings, self.source, self.label = settings, source, label

    def fail(self, setting: str, message: str, item: str = "") -> CatalogError:
        where = f"{self.source}: {self.label}: setting {setting!r}: " + (f"{item}: " if item else "")
        return CatalogError(where + message)

    def error(self, setting: str, expected: str, found: str, item: str = "") -> CatalogError:
        comma = ";" if "," in expected else ","
        return self.fail(setting, f"expected {expected}{comma} found {found}", item)

    def get(self, setting: str, expected: str, accepts: Callable[[Any], bool], default: Any = _ABSENT) -> Any:
        value = self.settings.get(setting, _ABSENT)
        if value is _ABSENT and default is not _ABSENT:
            return default
        if value is _ABSENT or not accepts(value):
            raise self.error(setting, expected, "nothing" if value is _ABSENT else _found(value))
        return value

    def choice(self, setting: str, choices: Collection[str], default: str) -> str:
        expected = f"one of {', '.join(choices)}"
        value = self.get(setting, expected, lambda value: isinstance(value, str), default)
        if value not in choices:
            raise self.error(setting, expected, repr(value))
        return str(value)

    def mapping(self, setting: str, expected: str) -> dict[str, Any]:
        value: dict[str, Any] = self.get(setting, expected, lambda value: isinstance(value, dict), {})
        if "" in value:
            raise self.error(setting, "non-empty field names", "''")
        return value


def _version_path(value: Any) -> bool:
    return isinstance(value, str) and bool(_VERSION_PATH.fullmatch(value))


def _optional_name(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str) and value != "")


class _Key(TypedDict, total=False):
    """StoreSpec's key arguments: exactly one of the two."""

    key: str
    key_pattern: str


def _key(store: _Store) -> _Key:
    key = store.get("key", "a non-empty string", _optional_name, None)
    pattern = store.get("key_pattern", "a non-empty regular expression", _optional_name, None)
    if (key is None) == (pattern is None):
        found = "neither" if key is None else "both"
        raise store.error("key" if key is None else "key_pattern", "exactly one of 'key' and 'key_pattern'", found)
    if key is not None:
        if key.startswith(OWN_KEY_PREFIX):
            raise store.error("key", f"a key outside lsmigrate's own {OWN_KEY_PREFIX!r} keys", repr(key))
        return {"key": key}
    try:
        re.compile(pattern)
    except re.error as error:
        raise store.error("key_pattern", "a regular expression", f"{pattern!r} ({error})") from error
    python_only = _python_only(pattern)
    if python_only is not None:
        expected = "a regular expression JavaScript reads too"
        raise store.error("key_pattern", expected, f"{pattern!r}, which uses {python_only} (Python only)")
    return {"key_pattern": pattern}


def _schema(
    store: _Store, table: str | None, id_field: str | None, timestamp_field: str | None
) -> tuple[RecordSchema, dict[str, str]]:
    """The record schema the fields and columns declare, and each field's declared type."""
    types = dict(store.mapping("fields", "an object of field types"))
    if id_field in types:
        raise store.error("fields", f"fields other than the id_field {id_field!r}", repr(id_field))
    for name, kind in types.items():
        if kind not in _FIELD_TYPES:
            raise store.error("fields", f"one of {', '.join(_FIELD_TYPES)}", _found(kind), f"field {name!r}")
    if timestamp_field is not None:
        kind = types.setdefault(timestamp_field, "timestamp")
        if kind != "timestamp":
            raise store.error("fields", "timestamp for the timestamp_field", repr(kind), f"field {timestamp_field!r}")
    # "a.b": a secret inside a field kept whole (taken out of it, kept encrypted).
    secret_paths = tuple(name for name in types if "." in name)
    for name in secret_paths:
        if types[name] != "secret" or "" in name.split("."):
            raise store.error("fields", "a field name, or a dotted path typed secret", repr(name), f"field {name!r}")
        del types[name]
    columns = store.mapping("columns", "an object of column names")
    if "columns" in store.settings and table is None:
        raise store.error("columns", "a 'table' whose columns they name", "no table")
    for name, column in columns.items():
        if name not in types:
            raise store.error("columns", "a field declared in 'fields'", repr(name))
        if not isinstance(column, str):
            raise store.error("columns", "a column name", json_type(column), f"field {name!r}")
    reserved = _BOOKKEEPING if table is not None else (*_BOOKKEEPING, "data")
    attributes: dict[str, SourceField] = {}
    taken: dict[str, str] = {}
    for name, kind in types.items():
        setting = "columns" if name in columns else "fields"
        column = columns.get(name, "updated_at" if name == timestamp_field else _snake_case(name))
        if not _COLUMN.fullmatch(column):
            raise store.error(setting, "a column that is a SQL identifier", repr(column), f"field {name!r}")
        if column in reserved:
            expected = f"a column other than lsmigrate's own {', '.join(reserved)}"
            raise store.error(setting, expected, repr(column), f"field {name!r}")
        for used in (column, f"{column}_hint") if kind == "secret" else (column,):
            if used in taken:
                found = f"{used!r}, the column of field {taken[used]!r} too"
                raise store.error(setting, "a column no other field has", found, f"field {name!r}")
            taken[used] = name
        attributes[column] = _FIELD_TYPES[kind](data_key=name)
    # A field is never a class attribute (marshmallow takes it out), so no column shadows the base's.
    base = RecordSchema if table is not None else DocumentSchema
    class_name = "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", store.settings["name"]))
    namespace = {"__module__": __name__, "secret_paths": secret_paths, **attributes}
    try:
        schema: RecordSchema = type(f"{class_name}Schema", (base,), namespace)()
    except TypeError as error:
        raise store.error("fields", "secret paths lsmigrate can take out of a record", str(error)) from error
    return schema, types


def _spec(store: _Store, names: Collection[str]) -> StoreSpec:
    """The StoreSpec a store's settings declare."""
    name: str = store.settings["name"]
    key = _key(store)
    envelope = envelope_named(store.choice("envelope", envelope_names(), "zustand"))
    assert envelope is not None
    path = store.get("path", "a path", lambda value: isinstance(value, str), "")
    try:
        parse_path(path)
    except PathError as error:
        raise store.error("path", f"a path ({error})", repr(path)) from error
    shape = store.choice("shape", SHAPES, "array")
    one = shape in SINGLE
    # false stands for null too: TOML has no null.
    id_field = store.get("id_field", "a field name, null or false", _optional_name, None if one else "id") or None
    timestamp_field = (
        store.get("timestamp_field", "a field name, null or false", _optional_name, None if one else "updatedAt")
        or None
    )
    version_path = store.get("version_path", "names separated by dots", _version_path, None)
    version = store.get("version", "a non-negative integer", lambda value: type(value) is int, 0)
    if version < 0:
        raise store.error("version", "a non-negative integer", repr(version))
    table = store.get("table", "a table name or null", lambda value: value is None or isinstance(value, str), None)
    if table is not None and not _TABLE.fullmatch(table):
        raise store.error("table", "a SQL identifier, or schema.table", repr(table))
    schema, types = _schema(store, table, id_field, timestamp_field)
    references = store.mapping("references", "an object of store names")
    for field_name, target in references.items():
        item = f"field {field_name!r}"
        if types.get(field_name) not in _REFERENCE_TYPES:
            kind = "a field not in 'fields'" if field_name not in types else repr(types[field_name])
            raise store.error("references", "a text or integer field declared in 'fields'", kind, item)
        if target not in names:
            raise store.error("references", f"one of this catalog's stores {', '.join(names)}", _found(target), item)
    policy = store.choice("conflict_policy", CONFLICT_POLICIES, "newest_wins")
    cleanup = store.choice("cleanup", CLEANUPS, "strip")
    try:
        return StoreSpec(
            name=name,
            schema=schema,
            table=table,
            **key,
            envelope=envelope,
            records_path=path,
            shape=shape,
            version_path=None if version_path is None else tuple(version_path.split(".")),
            id_field=id_field,
            timestamp_field=timestamp_field,
            conflict_policy=policy,
            version=version,
            references=references,
            cleanup=cleanup,
        )
    except ValueError as error:
        message = str(error).removeprefix(f"store {name!r}: ")
        raise CatalogError(f"{store.source}: {store.label}: {message}") from error


def catalog_from_document(document: Any, source: str) -> StoreCatalog:
    """The catalog a parsed document declares; `source` names the file in error messages."""
    if not isinstance(document, dict):
        raise CatalogError(f"{source}: expected an object holding 'stores' at the top level, found {_found(document)}")
    unknown = sorted(set(document) - {"stores"})
    if unknown:
        raise CatalogError(f"{source}: unknown top-level setting {unknown[0]!r}; the only one is 'stores'")
    entries = document.get("stores", _ABSENT)
    if not isinstance(entries, list) or not entries:
        found = "nothing" if entries is _ABSENT else "an empty array" if entries == [] else _found(entries)
        raise CatalogError(f"{source}: setting 'stores': expected an array of one store or more, found {found}")
    stores: list[_Store] = []
    positions: dict[str, str] = {}
    for position, settings in enumerate(entries):
        label = f"stores[{position}]"
        if not isinstance(settings, dict):
            raise CatalogError(f"{source}: {label}: expected an object of settings, found {_found(settings)}")
        store = _Store(settings, source, label)
        name = store.get("name", _NAME_EXPECTED, lambda value: isinstance(value, str) and bool(_NAME.fullmatch(value)))
        if name in positions:
            raise store.error("name", "a name no other store has", f"{name!r}, the name of {positions[name]} too")
        positions[name] = label
        store.label = f"store {name!r}"
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise store.fail(unknown[0], f"unknown setting; the settings are {', '.join(_SETTINGS)}")
        stores.append(store)
    specs = [_spec(store, tuple(positions)) for store in stores]
    try:
        return StoreCatalog(specs)
    except SharedKeyError as error:
        raise CatalogError(f"{source}: store {error.store!r}: setting {error.setting!r}: {error.message}") from error
    except ValueError as error:
        raise CatalogError(f"{source}: {error}") from error


def document_from_text(text: str, suffix: str, source: str) -> Any:
    """Parse a catalog's text as JSON or TOML, by its file's suffix."""
    text = text.removeprefix("\ufeff")
    if suffix.lower() == ".json":

        def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            # json keeps the last of a repeated name: a setting written twice would pass unseen.
            value = dict(pairs)
            if len(value) < len(pairs):
                repeated = next(name for i, (name, _) in enumerate(pairs) if name in dict(pairs[:i]))
                raise CatalogError(f"{source}: {repeated!r} is set twice in one object")
            return value

        def refuse(constant: str) -> None:
            raise CatalogError(f"{source}: not valid JSON: {constant} is not a JSON value")

        try:
            return json.loads(text, object_pairs_hook=unique, parse_constant=refuse)
        except json.JSONDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            raise CatalogError(f"{source}: not valid JSON: {error.msg} (at {where})") from error
    if suffix.lower() == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise CatalogError(f"{source}: not valid TOML: {error}") from error
    raise _suffix_error(source, suffix)


def _suffix_error(source: str, suffix: str) -> CatalogError:
    return CatalogError(f"{source}: expected a .json or .toml catalog, found {suffix or 'no suffix'!r}")


def catalog_from_text(text: str, suffix: str, source: str) -> StoreCatalog:
    """The catalog a file's text declares, read as JSON or TOML by the file's suffix."""
    return catalog_from_document(document_from_text(text, suffix, source), source)


def catalog_from_file(path: str | os.PathLike[str]) -> StoreCatalog:
    """The catalog a `.json` or `.toml` file declares."""
    source = os.fspath(path)
    suffix = Path(source).suffix
    if suffix.lower() not in (".json", ".toml"):
        raise _suffix_error(source, suffix)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(f"{source}: cannot read the catalog: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise CatalogError(f"{source}: expected UTF-8 text, found a byte that is not (at {error.start})") from error
    return catalog_from_text(text, suffix, source)
