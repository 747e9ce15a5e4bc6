"""Mapping source records onto rows, losslessly.

A store's record schema (a marshmallow `RecordSchema`) converts the known
fields into typed columns in one `load`. `map_record` then gives the row its
deterministic id, fills defaults, and keeps in `metadata` everything needed
to give the source record back (`rebuild`): the original of every value the
column cannot reproduce, the names of absent fields, the source id, the
fields that live only in metadata, and unknown fields.

Row metadata layout:
    source_id  the source id, when the row id is not that id
    <name>     each of the schema's `metadata_fields` that was present
    extra      unknown fields, unchanged
    original   source key -> original value, where the column differs
    absent     source keys the record did not have
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError

from lsmigrate.shared.canonical import digest
from lsmigrate.shared.fields import Secret, SourceField, json_type
from lsmigrate.shared.ids import as_uuid, content_id, derived_id

_ABSENT: Any = object()


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


class RecordSchema(Schema):
    """Base of the store record schemas: declared fields are `SourceField`s."""

    class Meta:
        unknown = EXCLUDE

    metadata_fields: ClassVar[tuple[str, ...]] = ()

    def derive(self, row: dict[str, Any], record: dict[str, Any]) -> None:
        """Fill the columns computed from several fields (none by default)."""


def _same(rebuilt: Any, original: Any) -> bool:
    return rebuilt is original or (type(rebuilt) is type(original) and rebuilt == original)


def _row_id(
    record: dict[str, Any], user_id: str, store: str, record_digest: str, meta: dict[str, Any]
) -> tuple[str, list[dict[str, str]]]:
    source_id = record.get("id", _ABSENT)
    if source_id is _ABSENT:
        meta.setdefault("absent", []).append("id")
        return content_id(user_id, store, record_digest), [{"code": "id_missing", "field": "id"}]
    if source_id is None or source_id == "":
        meta["source_id"] = source_id
        return content_id(user_id, store, record_digest), [{"code": "id_missing", "field": "id"}]
    if isinstance(source_id, bool) or not isinstance(source_id, str | int | float):
        raise ValidationError({"id": [f"expected a string or number id, found {json_type(source_id)}"]})
    canonical_uuid = as_uuid(source_id)
    if canonical_uuid is not None:
        if canonical_uuid != source_id:
            meta["source_id"] = source_id
        return canonical_uuid, []
    meta["source_id"] = source_id
    return derived_id(user_id, store, source_id), [{"code": "id_derived", "field": "id"}]


def _reasons(error: ValidationError) -> list[dict[str, str]]:
    messages = error.messages if isinstance(error.messages, dict) else {"_record": error.messages}
    reasons = []
    for source_key, texts in messages.items():
        for text in texts if isinstance(texts, list) else [texts]:
            reasons.append({"code": "invalid_value", "field": str(source_key), "message": str(text)})
    return reasons


def _fill_timestamps(row: dict[str, Any], migrated_at: str) -> None:
    created, updated = row.get("created_at"), row.get("updated_at")
    row["created_at"] = created or updated or migrated_at
    row["updated_at"] = updated or created or migrated_at


def map_record(
    schema: RecordSchema,
    store: str,
    record: Any,
    *,
    index: int,
    user_id: str,
    migrated_at: str,
) -> MappedRecord:
    """Map one source record onto a row of `store`, or quarantine it."""
    record_digest = digest(record)
    if not isinstance(record, dict):
        reason = {"code": "not_an_object", "field": "", "message": f"expected an object, found {json_type(record)}"}
        return MappedRecord(index, record_digest, None, reasons=[reason])
    meta: dict[str, Any] = {}
    try:
        row_id, warnings = _row_id(record, user_id, store, record_digest, meta)
        loaded = schema.load(record)
    except ValidationError as error:
        return MappedRecord(index, record_digest, None, reasons=_reasons(error))

    declared: list[tuple[str, str, SourceField]] = []
    row: dict[str, Any] = {"id": row_id}
    secrets: dict[str, str] = {}
    for name, source_field in schema.load_fields.items():
        assert isinstance(source_field, SourceField)
        value = loaded.get(name)
        if value is None or (value == "" and source_field.column_default is not None):
            value = source_field.column_default
        if isinstance(source_field, Secret):
            row[f"{name}_hint"] = None if value is None else secret_hint(value)
            if value is not None:
                secrets[name] = value
        else:
            row[name] = value
        declared.append((name, source_field.data_key or name, source_field))
    if "created_at" in row:
        _fill_timestamps(row, migrated_at)
    schema.derive(row, record)

    original: dict[str, Any] = {}
    for name, source_key, source_field in declared:
        source_value = record.get(source_key, _ABSENT)
        column_value = secrets.get(name) if isinstance(source_field, Secret) else row[name]
        if source_value is _ABSENT:
            meta.setdefault("absent", []).append(source_key)
            if column_value is not None and source_field.column_default is not False:
                warnings.append({"code": source_field.warning_code(None), "field": source_key})
        elif not _same(source_field.to_source(column_value), source_value):
            original[source_key] = source_value
            warnings.append({"code": source_field.warning_code(source_value), "field": source_key})
    known = {source_key for _, source_key, _ in declared}
    known.add("id")
    for name in schema.metadata_fields:
        known.add(name)
        if name in record:
            meta[name] = record[name]
    extra = {key: value for key, value in record.items() if key not in known}
    if extra:
        meta["extra"] = extra
    if original:
        meta["original"] = original
    row["metadata"] = meta
    return MappedRecord(index, record_digest, row, warnings=warnings, secrets=secrets)


def rebuild(schema: RecordSchema, row: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    """The source record a mapped row came from (equal in canonical form)."""
    meta = row["metadata"]
    absent = set(meta.get("absent", ()))
    original = meta.get("original", {})
    source: dict[str, Any] = {}
    if "id" not in absent:
        source["id"] = meta["source_id"] if "source_id" in meta else row["id"]
    for name, source_field in schema.load_fields.items():
        assert isinstance(source_field, SourceField)
        source_key = source_field.data_key or name
        if source_key in absent:
            continue
        if source_key in original:
            source[source_key] = original[source_key]
        elif isinstance(source_field, Secret):
            source[source_key] = secrets.get(name)
        else:
            source[source_key] = source_field.to_source(row[name])
    for name in schema.metadata_fields:
        if name in meta:
            source[name] = meta[name]
    source.update(meta.get("extra", {}))
    return source


def secret_hint(secret: str) -> str:
    """A display hint that names a secret without revealing it: ghp_…abcd."""
    if len(secret) < 12:
        return "…"
    return f"{secret[:4]}…{secret[-4:]}"
