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

Warning codes (each with the source `field`): id_missing, id_derived,
id_lowercased, <field>_missing (a defaulted title), <field>_variant,
<field>_unknown, <field>_missing (a defaulted choice), number_as_text,
value_defaulted (a text field's default), flag_converted, timestamp_missing,
timestamp_unparseable, timestamp_epoch_ms, timestamp_normalised,
value_converted. Quarantine reason codes:
not_an_object, invalid_id, wrong_type, invalid_value. A secret field's value
appears in neither.
"""

from __future__ import annotations

import re
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
    secrets: dict[str, str] = field(default_factory=dict)

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
        document_column  the whole record is kept, unchanged, in this column
        key_column       the record's localStorage key goes into this column
    Schema-level load hooks do not run in the mapping; conversions belong in
    fields, computed columns in `derive`.
    """

    class Meta:
        unknown = EXCLUDE

    metadata_fields: ClassVar[tuple[str, ...]] = ()
    document_column: ClassVar[str | None] = None
    key_column: ClassVar[str | None] = None

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


def secret_hint(secret: str) -> str:
    """A display hint that names a secret without revealing it: ghp_…abcd."""
    if len(secret) < 12:
        return "…"
    return f"{secret[:4]}…{secret[-4:]}"


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

    def map(self, record: Any, *, key: str, index: int, user_id: str, migrated_at: str) -> MappedRecord:
        """Map one source record of localStorage key `key` onto a row, or quarantine it."""
        record_digest = digest(record)
        if type(record) is not dict:
            reason = {"code": "not_an_object", "field": "", "message": f"expected an object, found {json_type(record)}"}
            return MappedRecord(index, record_digest, None, reasons=[reason])
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
        secrets: dict[str, str] = {}
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
        return described

    def rebuild(self, row: dict[str, Any], secrets: dict[str, str]) -> Any:
        """The source record a mapped row came from (equal in canonical form)."""
        if self.schema.document_column is not None:
            return row[self.schema.document_column]
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
        return source
