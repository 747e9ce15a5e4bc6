"""Mapping source records onto rows, losslessly, in one pass per record.

A store's record schema (a marshmallow `RecordSchema` whose fields are
`SourceField`s) is compiled once into a `RecordMapper`. For each record the
mapper reads every declared field once: the field converts the value, says
whether its inverse gives the value back exactly, and its validators run on
the column value. The row then gets its deterministic id, defaults and
derived columns, and `metadata` keeps everything needed to give the source
record back (`rebuild`).

Row metadata layout:
    source_id  the source id, when the row id is not that id
    <name>     each of the schema's `metadata_fields` that was present
    extra      unknown fields, unchanged
    original   source key -> original value, where the column differs
    absent     source keys the record did not have

Secrets: a `Secret` field's value goes into `MappedRecord.secrets` under its
column's name (the row keeps only a hint); a value at one of the schema's
`secret_paths` (`auth.token`: a key of an object inside the record) is taken
out of everything kept in clear (columns, the document column, metadata)
and goes there under its path. `rebuild` puts both back.

Warning codes (each with the source `field`): id_missing, id_derived,
id_lowercased, <field>_missing (a defaulted title), <field>_variant,
<field>_unknown, <field>_missing (a defaulted choice), number_as_text,
value_defaulted (a text or date field's default), flag_converted, timestamp_missing,
timestamp_unparseable, timestamp_epoch_ms, timestamp_normalised,
value_converted, date_epoch_ms, date_from_timestamp.
Quarantine reason codes: not_an_object, invalid_id, wrong_type,
invalid_value. A secret's value appears in neither.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError

from lsmigrate.shared.canonical import digest
from lsmigrate.shared.fields import Secret, SourceField, json_type
from lsmigrate.shared.ids import content_id, derived_id

_ABSENT: Any = object()
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_ANY_CASE = re.compile(_UUID.pattern, re.IGNORECASE)
_RESERVED_METADATA = frozenset({"source_id", "extra", "original", "absent"})
# The columns design §4 fills from each other, then from the migration time.
_TIMESTAMP_COLUMNS = ("created_at", "updated_at")


@dataclass(frozen=True, slots=True)
class MappedRecord:
    """What one source record became: a row, or quarantine reasons."""

    index: int
    digest: str
    row: dict[str, Any] | None
    warnings: list[dict[str, str]] = field(default_factory=list)
    reasons: list[dict[str, str]] = field(default_factory=list)
    #: Secret values: a Secret field's by its column name, one at a secret path by that path (any JSON value).
    secrets: dict[str, Any] = field(default_factory=dict)

    @property
    def quarantined(self) -> bool:
        """True when the record could not be mapped onto a row."""
        return self.row is None

    def as_dict(self) -> dict[str, Any]:
        """The outcome as JSON: secret values are left out, only their field names listed."""
        return {
            "index": self.index,
            "digest": self.digest,
            "row": self.row,
            "warnings": self.warnings,
            "reasons": self.reasons,
            "secrets": sorted(self.secrets),
        }


class RecordSchema(Schema):
    """Base of the store record schemas: every declared field is a `SourceField`.

    Class attributes a store schema may set:
        metadata_fields  source fields kept unchanged in the row's metadata
        document_column  the whole record is kept in this column, unchanged but for its secrets
        key_column       the record's localStorage key goes into this column
        secret_paths     dotted paths of secrets inside the record ("auth.token"): each value
                         found there (not null) is kept out of every clear column and handed
                         over in `MappedRecord.secrets` under its path; a path that is absent,
                         or whose parent is not an object, is simply not there
    Schema-level load hooks do not run in the mapping; conversions belong in
    fields, computed columns in `derive`.
    """

    class Meta:
        unknown = EXCLUDE

    metadata_fields: ClassVar[tuple[str, ...]] = ()
    document_column: ClassVar[str | None] = None
    key_column: ClassVar[str | None] = None
    secret_paths: ClassVar[tuple[str, ...]] = ()

    def derive(self, row: dict[str, Any], record: dict[str, Any]) -> None:
        """Fill the columns computed from several fields (none by default)."""


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    source_key: str
    field: SourceField
    secret: bool
    default: Any
    filled: bool


def _messages(error: ValidationError) -> list[str]:
    messages = error.messages
    if isinstance(messages, dict):
        return [text for value in messages.values() for text in _messages(ValidationError(value))]
    return [str(text) for text in (messages if isinstance(messages, list) else [messages])]


def _reason(code: str, column: _Column, error: ValidationError) -> dict[str, str]:
    message = "the value was refused" if column.secret else "; ".join(_messages(error))
    return {"code": code, "field": column.source_key, "message": message}


def reference_id(store: str, keep_uuids: bool, source_id: Any, user_id: str) -> str | None:
    """The row id the record of `store` whose source id is `source_id` gets (the rule of `_row_id`); None for
    a value no record can have as its id."""
    if isinstance(source_id, bool) or not isinstance(source_id, str | int | float) or source_id == "":
        return None
    if keep_uuids and isinstance(source_id, str) and _UUID_ANY_CASE.fullmatch(source_id):
        return source_id.lower()
    return derived_id(user_id, store, source_id)


#: A secret shorter than this shows nothing of itself in its hint.
HINTED_LENGTH = 20


def secret_hint(secret: str) -> str:
    """A display hint that tells secrets apart without revealing them: the last 4 characters of a secret of
    20 or more (…abcd), nothing of a shorter one (…): too little of it would be left to guess."""
    if len(secret) < HINTED_LENGTH:
        return "…"
    return f"…{secret[-4:]}"


Steps = tuple[str, ...]


def _take_at(record: dict[str, Any], steps: Steps) -> tuple[dict[str, Any], Any]:
    """`record` without the non-null value at `steps`, and that value (the objects on the way are copied, never
    changed); `record` itself and `_ABSENT` when nothing is there."""
    head, rest = steps[0], steps[1:]
    value = record.get(head)
    if rest:
        if not isinstance(value, dict):
            return record, _ABSENT
        inner, taken = _take_at(value, rest)
        return (record, _ABSENT) if taken is _ABSENT else ({**record, head: inner}, taken)
    if value is None:
        return record, _ABSENT
    return {name: item for name, item in record.items() if name != head}, value


def _put_at(record: dict[str, Any], steps: Steps, value: Any) -> dict[str, Any]:
    """A copy of `record` holding `value` at `steps`; `record` itself when an object on the way is gone."""
    head, rest = steps[0], steps[1:]
    if not rest:
        return {**record, head: value}
    inner = record.get(head)
    return {**record, head: _put_at(inner, rest, value)} if isinstance(inner, dict) else record


def _change_at(record: dict[str, Any], steps: Steps, change: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of `record` whose non-null value at `steps` is `change(value)`; `record` itself when none is there."""
    head, rest = steps[0], steps[1:]
    value = record.get(head)
    if value is None or (rest and not isinstance(value, dict)):
        return record
    changed = _change_at(value, rest, change) if rest else change(value)
    return record if changed is value else {**record, head: changed}


def _secret_steps(schema: RecordSchema, columns: list[_Column], id_field: str | None) -> tuple[tuple[str, Steps], ...]:
    """The schema's secret paths, each with its steps; TypeError for a path the mapping could not honour."""
    name = type(schema).__name__
    fields = {column.source_key: column for column in columns}
    secret_columns = {column.name for column in columns if column.secret}
    found: list[tuple[str, Steps]] = []
    for path in schema.secret_paths:
        steps = tuple(path.split(".")) if isinstance(path, str) else ("",)
        if "" in steps:
            raise TypeError(f"{name}.secret_paths: {path!r} is not a dotted path of keys")
        if steps[0] == id_field:
            raise TypeError(f"{name}.secret_paths: {path!r} lies in the id field, which is never secret")
        if len(steps) == 1 and path in fields:
            raise TypeError(f"{name}.secret_paths: {path!r} is a field of the schema: make that field a Secret")
        if path in secret_columns:
            raise TypeError(f"{name}.secret_paths: {path!r} is also the column of a Secret field")
        for other, other_steps in found:
            shorter, longer = sorted((steps, other_steps), key=len)
            if longer[: len(shorter)] == shorter:
                raise TypeError(f"{name}.secret_paths: {path!r} and {other!r} overlap")
        found.append((path, steps))
    return tuple(found)


class RecordMapper:
    """A store's record schema compiled into one pass per record, and its inverse."""

    def __init__(self, schema: RecordSchema, store: str, id_field: str | None, *, keep_uuids: bool = True) -> None:
        if any(schema._hooks.values()):
            raise TypeError(f"{type(schema).__name__} has load hooks; put conversions in SourceFields and `derive`")
        reserved = _RESERVED_METADATA.intersection(schema.metadata_fields)
        if reserved:
            raise TypeError(f"{type(schema).__name__}.metadata_fields uses reserved names {sorted(reserved)}")
        columns = []
        for name, source_field in schema.load_fields.items():
            if not isinstance(source_field, SourceField):
                raise TypeError(f"{type(schema).__name__}.{name} is a {type(source_field).__name__}, not a SourceField")
            columns.append(
                _Column(
                    name,
                    source_field.data_key or name,
                    source_field,
                    isinstance(source_field, Secret),
                    source_field.column_default,
                    name in _TIMESTAMP_COLUMNS,
                )
            )
        self.schema = schema
        self.store = store
        self.id_field = id_field
        # False where stores share a table (lsmigrate's generic one): every id is then derived, scoped by store.
        self.keep_uuids = keep_uuids
        #: source key -> (store, its keep_uuids): a field holding the id of another store's record.
        self.references: dict[str, tuple[str, bool]] = {}
        self.columns = tuple(columns)
        self.metadata_fields = schema.metadata_fields
        self.known = frozenset([c.source_key for c in columns] + [*schema.metadata_fields, id_field])
        #: (path, its steps) of each of the schema's secret_paths.
        self.nested_secrets = _secret_steps(schema, columns, id_field)
        self._secret_keys = frozenset(c.name for c in columns if c.secret)
        # Where every secret sits in a source record: each Secret field's key, then each secret path.
        self._secret_places = tuple((c.source_key,) for c in columns if c.secret) + tuple(
            steps for _, steps in self.nested_secrets
        )

    @property
    def secret_paths(self) -> frozenset[str]:
        """Every secret of a record: the source key of each Secret field and each of the schema's secret_paths."""
        return frozenset(c.source_key for c in self.columns if c.secret) | {path for path, _ in self.nested_secrets}

    def change_secrets(self, record: Any, change: Callable[[Any], Any]) -> Any:
        """A copy of a source record (as it came, even one the mapping refuses) whose every non-null secret value
        is `change(value)`: at a Secret field's key or at a secret path; a record that is no object as it is."""
        if not isinstance(record, dict):
            return record
        for steps in self._secret_places:
            record = _change_at(record, steps, change)
        return record

    def put_secret_paths(self, record: Any, secrets: dict[str, Any]) -> Any:
        """A copy of `record` with the secrets of `secrets` that sit at secret paths put back there."""
        if not isinstance(record, dict):
            return record
        for path, steps in self.nested_secrets:
            if path in secrets:
                record = _put_at(record, steps, secrets[path])
        return record

    def map(self, record: Any, *, key: str, index: int, user_id: str, migrated_at: str) -> MappedRecord:
        """Map one source record of localStorage key `key` onto a row, or quarantine it."""
        record_digest = digest(record)
        if type(record) is not dict:
            reason = {"code": "not_an_object", "field": "", "message": f"expected an object, found {json_type(record)}"}
            return MappedRecord(index, record_digest, None, reasons=[reason])
        secrets: dict[str, Any] = {}
        for path, steps in self.nested_secrets:
            record, value = _take_at(record, steps)
            if value is not _ABSENT:
                secrets[path] = value
        meta: dict[str, Any] = {}
        warnings: list[dict[str, str]] = []
        absent: list[str] = []
        try:
            row: dict[str, Any] = {"id": self._row_id(record, key, user_id, record_digest, meta, warnings, absent)}
        except ValidationError as error:
            reason = {"code": "invalid_id", "field": str(self.id_field), "message": "; ".join(_messages(error))}
            return MappedRecord(index, record_digest, None, reasons=[reason])
        schema = self.schema
        if schema.key_column is not None:
            row[schema.key_column] = key
        if schema.document_column is not None:
            row[schema.document_column] = record

        original: dict[str, Any] = {}
        reasons: list[dict[str, str]] = []
        references = self.references
        for column in self.columns:
            value = record.get(column.source_key, _ABSENT)
            if value is _ABSENT:
                converted = column.default
                absent.append(column.source_key)
                if column.filled or (converted is not None and not column.field.quiet_default):
                    warnings.append({"code": column.field.warning_code(None), "field": column.source_key})
            elif value is None:
                converted = column.default
                if converted is not None or column.filled:
                    original[column.source_key] = None
                    warnings.append({"code": column.field.warning_code(None), "field": column.source_key})
            else:
                source_field = column.field
                try:
                    converted, exact = source_field.convert(value)
                except ValidationError as error:
                    reasons.append(_reason(source_field.reason_code, column, error))
                    continue
                if source_field.validators and converted is not None:
                    try:
                        source_field._validate(converted)
                    except ValidationError as error:
                        reasons.append(_reason("invalid_value", column, error))
                        continue
                if converted is None:
                    converted = column.default
                if not exact:
                    original[column.source_key] = value
                    warnings.append({"code": source_field.warning_code(value), "field": column.source_key})
            if references and converted is not None and column.source_key in references:
                target = reference_id(*references[column.source_key], value, user_id)
                if target is not None and target != converted:
                    original.setdefault(column.source_key, value)
                    converted = target
            if column.secret:
                row[f"{column.name}_hint"] = None if converted is None else secret_hint(converted)
                if converted is not None:
                    secrets[column.name] = converted
            else:
                row[column.name] = converted
        if reasons:
            return MappedRecord(index, record_digest, None, reasons=reasons)
        if schema.document_column is not None and self._secret_keys.intersection(secrets):
            # A Secret field's value is no more kept in clear in the document than in its column.
            taken = {c.source_key for c in self.columns if c.secret and c.name in secrets}
            row[schema.document_column] = {name: value for name, value in record.items() if name not in taken}

        created, updated = row.get("created_at"), row.get("updated_at")
        row["created_at"] = created or updated or migrated_at
        row["updated_at"] = updated or created or migrated_at
        schema.derive(row, record)
        for name in self.metadata_fields:
            if name in record:
                meta[name] = record[name]
        if schema.document_column is None:
            known = self.known
            extra = {name: value for name, value in record.items() if name not in known}
            if extra:
                meta["extra"] = extra
        if original:
            meta["original"] = original
        if absent:
            meta["absent"] = absent
        row["metadata"] = meta
        return MappedRecord(index, record_digest, row, warnings=warnings, secrets=secrets)

    def _row_id(
        self,
        record: dict[str, Any],
        key: str,
        user_id: str,
        record_digest: str,
        meta: dict[str, Any],
        warnings: list[dict[str, str]],
        absent: list[str],
    ) -> str:
        id_field = self.id_field
        if id_field is None:
            # One record per key (a form draft, the preferences): the key is its identity.
            return derived_id(user_id, self.store, key)
        source_id = record.get(id_field, _ABSENT)
        if type(source_id) is str and _UUID.fullmatch(source_id) and self.keep_uuids:
            return source_id
        if source_id is _ABSENT:
            absent.append(id_field)
            warnings.append({"code": "id_missing", "field": id_field})
            return content_id(user_id, self.store, record_digest)
        if isinstance(source_id, bool) or not isinstance(source_id, str | int | float | None):
            raise ValidationError(f"expected a string or number id, found {json_type(source_id)}")
        meta["source_id"] = source_id
        if source_id is None or source_id == "":
            warnings.append({"code": "id_missing", "field": id_field})
            return content_id(user_id, self.store, record_digest)
        if not self.keep_uuids:
            return derived_id(user_id, self.store, source_id)  # the source id is kept beside the row's
        if isinstance(source_id, str) and _UUID_ANY_CASE.fullmatch(source_id):
            warnings.append({"code": "id_lowercased", "field": id_field})
            return source_id.lower()
        warnings.append({"code": "id_derived", "field": id_field})
        return derived_id(user_id, self.store, source_id)

    def describe(self) -> list[list[str]]:
        """The compiled fields as JSON ([source key, column, field type] each): part of the catalog's version."""
        described = [[c.source_key, c.name, type(c.field).__name__] for c in self.columns]
        schema = self.schema
        described += [[name, "metadata", "kept"] for name in self.metadata_fields]
        for role, column in (("document", schema.document_column), ("key", schema.key_column)):
            if column is not None:
                described.append(["", column, role])
        described += [[path, "secrets_encrypted", "secret"] for path, _ in self.nested_secrets]
        return described

    def rebuild(self, row: dict[str, Any], secrets: dict[str, Any]) -> Any:
        """The source record a mapped row came from (equal in canonical form), its secrets taken from `secrets`
        (as `MappedRecord.secrets` holds them; a secret path's value it lacks is left out of the record)."""
        if self.schema.document_column is not None:
            document = row[self.schema.document_column]
            if isinstance(document, dict) and self._secret_keys.intersection(secrets):
                restored = {c.source_key: secrets[c.name] for c in self.columns if c.secret and c.name in secrets}
                document = {**document, **restored}
            return self.put_secret_paths(document, secrets)
        meta = row["metadata"]
        absent = set(meta.get("absent", ()))
        original = meta.get("original", {})
        source: dict[str, Any] = {}
        if self.id_field is not None and self.id_field not in absent:
            source[self.id_field] = meta["source_id"] if "source_id" in meta else row["id"]
        for column in self.columns:
            if column.source_key in absent:
                continue
            if column.source_key in original:
                source[column.source_key] = original[column.source_key]
            elif column.secret:
                source[column.source_key] = secrets.get(column.name)
            else:
                source[column.source_key] = column.field.to_source(row[column.name])
        for name in self.metadata_fields:
            if name in meta:
                source[name] = meta[name]
        source.update(meta.get("extra", {}))
        return self.put_secret_paths(source, secrets)
