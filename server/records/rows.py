"""Rows of the migrated-record tables: built from mapped records, imaged, restored, rebuilt.

Rows are built the same way for every store: in a store's own table each
secret column of the spec is stored as `<name>_encrypted` beside the
`<name>_hint` the mapping made, and the secrets at the schema's secret paths
(`auth.token`) in one ciphertext of the JSON object {path: value}
(`secrets_encrypted`); in lsmigrate's generic `migrated_records` the row
holds the source record (`data`, its secrets taken out), all its secrets in
one ciphertext (`secrets_encrypted`), and the store's name. An image is a
row as JSON (dates and times in ISO 8601, ids as text, secret columns as stored,
encrypted): the ledger keeps the image of a row a session overwrote, a
conflict the image of the user's row, and rollback writes an image back.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Date, DateTime, UniqueConstraint, Uuid, select

from lsmigrate.server.db import Moment, db
from lsmigrate.server.db.sql import among
from lsmigrate.server.records.secrets import SecretBox
from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.mapping import MappedRecord, secret_hint
from lsmigrate.shared.stores import StoreSpec

# Warnings that say a record's timestamp field gave no time: the column then holds a fallback.
_NO_TIME = frozenset({"timestamp_missing", "timestamp_unparseable"})
# Columns a write never changes: the row's identity and owner.
IDENTITY = ("id", "user_id")


def is_generic(model: Any) -> bool:
    """True for lsmigrate's generic table, where stores keep their records as documents."""
    return _generic_image(model.__table__.columns)


def _generic_image(names: Any) -> bool:
    """True when `names` (an image, or a table's columns) are those of the generic table."""
    # A host table may have secrets_encrypted (secret paths) and a column "store" of its own too.
    return all(name in names for name in ("secrets_encrypted", "store", "record_id"))


def db_row(
    spec: StoreSpec,
    mapped: MappedRecord,
    row_id: uuid.UUID,
    owner: tuple[uuid.UUID, str],
    box: SecretBox,
    model: Any = None,
) -> dict[str, Any]:
    """The row of a mapped record in `model`'s table, written by session `owner[0]` for user `owner[1]`."""
    assert mapped.row is not None
    generic, typed = _layout(model)  # one cached lookup per record: this runs for every row written
    if generic:
        return _generic_row(spec, mapped, row_id, owner, box)
    row = dict(mapped.row)
    row["id"] = row_id
    for name, kind in typed:
        value = row.get(name)
        if isinstance(value, str):  # the shared mapping's JSON text: an ISO time or date, a reference's id
            row[name] = _FROM_TEXT[kind](value)
    row["user_id"] = owner[1]
    row["source_digest"] = mapped.digest
    row["migration_session_id"] = owner[0]
    # Every row of a batch gets the same keys (one multi-row statement): a secret
    # column the record lacks is stored as NULL, not left out.
    for column in spec.mapper.columns:
        if column.secret:
            secret = mapped.secrets.get(column.name)
            row[f"{column.name}_encrypted"] = None if secret is None else box.encrypt(secret)
    if spec.mapper.nested_secrets:
        nested = {path: mapped.secrets[path] for path, _ in spec.mapper.nested_secrets if path in mapped.secrets}
        row["secrets_encrypted"] = box.encrypt(canonical_json(nested)) if nested else None
    return row


def _moment(text: str) -> datetime:
    """The aware time ISO text stands for: a Timestamp's time, or a Date's date at midnight UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _day(text: str) -> date:
    """The date ISO text stands for: a Date's date, or a Timestamp's UTC date."""
    return _moment(text).astimezone(UTC).date()


_FROM_TEXT: dict[str, Callable[[str], Any]] = {"datetime": _moment, "date": _day, "uuid": uuid.UUID}


@functools.cache
def _layout(model: Any) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """(whether `model` is the generic table, the columns whose value the mapping gives as text but the
    column takes typed, as (name, datetime | date | uuid)); without a model, created_at and updated_at."""
    found = {"created_at": "datetime", "updated_at": "datetime"}
    if model is None:
        return False, tuple(found.items())
    for column in model.__table__.columns:
        kind = getattr(column.type, "impl", column.type)
        if isinstance(kind, DateTime):
            found[column.name] = "datetime"
        elif isinstance(kind, Date):
            found[column.name] = "date"
        elif isinstance(kind, Uuid) and column.name not in IDENTITY and column.name != "migration_session_id":
            found[column.name] = "uuid"
    return is_generic(model), tuple(found.items())


def _generic_row(
    spec: StoreSpec, mapped: MappedRecord, row_id: uuid.UUID, owner: tuple[uuid.UUID, str], box: SecretBox
) -> dict[str, Any]:
    assert mapped.row is not None
    mapped_row = mapped.row
    data = spec.rebuild(mapped_row, {})  # without its secrets
    meta = mapped_row["metadata"]
    if isinstance(data, dict) and (mapped.secrets or spec.references):
        taken = {c.source_key for c in spec.mapper.columns if c.secret and c.name in mapped.secrets}
        data = {name: value for name, value in data.items() if name not in taken}
        rewritten = meta.get("original", {})
        for column in spec.mapper.columns:  # a reference holds the row id it was rewritten to
            if column.source_key in spec.references and column.source_key in rewritten:
                data[column.source_key] = mapped_row[column.name]
    source_id = meta.get("source_id") if spec.id_field is not None else None
    if source_id is not None and not isinstance(source_id, str):
        source_id = canonical_json(source_id)
    return {
        "id": row_id,
        "user_id": owner[1],
        "store": spec.name,
        "record_id": None
        if source_id is None
        else source_id
        if isinstance(source_id, str)
        else canonical_json(source_id),
        "data": data,
        "secrets_encrypted": box.encrypt(canonical_json(mapped.secrets)) if mapped.secrets else None,
        "metadata": meta,
        "source_digest": mapped.digest,
        "migration_session_id": owner[0],
        "created_at": _moment(mapped_row["created_at"]),
        "updated_at": _moment(mapped_row["updated_at"]),
    }


def version_column(spec: StoreSpec) -> str | None:
    """The column holding the store's `timestamp_field`, the one conflicts compare; None without one."""
    return next((c.name for c in spec.mapper.columns if c.source_key == spec.timestamp_field), None)


def local_version(spec: StoreSpec, mapped: MappedRecord) -> datetime | None:
    """The record's own timestamp, or None when its timestamp field gave none (a fallback is no evidence)."""
    column = version_column(spec)
    if column is None or mapped.row is None or mapped.row.get(column) is None:
        return None
    if any(w.get("field") == spec.timestamp_field and w.get("code") in _NO_TIME for w in mapped.warnings):
        return None
    return _moment(mapped.row[column])


@functools.cache
def unique_per_user(model: Any) -> tuple[str, ...]:
    """The columns a user's rows may not share (a unique constraint on user_id and that one column): the one
    rule that says which values (an environment's name) ingest renames and rollback must not restore twice."""
    found = []
    for constraint in model.__table__.constraints:
        if isinstance(constraint, UniqueConstraint) and len(constraint.columns) == 2:
            names = [column.name for column in constraint.columns if column.name != "user_id"]
            if len(names) == 1:
                found.append(names[0])
    return tuple(found)


def unique_name(spec: StoreSpec, model: Any) -> tuple[str, str] | None:
    """(column, source field) of a record field unique per user (an environment's name); None without one."""
    fields = {column.name: column.source_key for column in spec.mapper.columns}
    column = next((name for name in unique_per_user(model) if name in fields), None)
    return None if column is None else (column, fields[column])


def image(model: Any, row: Any) -> dict[str, Any]:
    """A row (a SQLAlchemy Row of the whole table) as JSON."""
    out: dict[str, Any] = {}
    for column in model.__table__.columns:
        value = row._mapping[column]
        if isinstance(value, date):  # a datetime too
            value = value.isoformat()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        out[column.name] = value
    return out


def image_values(model: Any, picture: dict[str, Any]) -> dict[str, Any]:
    """The column values an image stands for, ready to be written."""
    values: dict[str, Any] = {}
    for column in model.__table__.columns:
        value = picture.get(column.name)
        if value is not None and isinstance(column.type, Moment):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(column.type, Date):
            value = date.fromisoformat(value)
        elif value is not None and isinstance(column.type, Uuid):
            value = uuid.UUID(value)
        values[column.name] = value
    return values


def fetch_images(model: Any, user_id: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """Images of the user's rows with these ids."""
    wanted = list(ids)
    if not wanted:
        return {}
    table = model.__table__
    query = select(table).where(among(table.c.id, wanted), table.c.user_id == user_id)
    return {row.id: image(model, row) for row in db.session.execute(query)}


def source_record(spec: StoreSpec, picture: dict[str, Any], secrets: dict[str, Any]) -> Any:
    """The source record an image's row stands for, its secrets taken from `secrets` (as `stored_secrets` gives
    them: by column name, or by secret path)."""
    if _generic_image(picture):  # the record is `data`
        data = picture["data"]
        if not isinstance(data, dict) or not (secrets or spec.references):
            return data
        restored = {c.source_key: secrets[c.name] for c in spec.mapper.columns if c.secret and c.name in secrets}
        original = (picture.get("metadata") or {}).get("original", {})
        restored.update({name: value for name, value in original.items() if name in spec.references})
        return spec.mapper.put_secret_paths({**data, **restored}, secrets)
    return spec.rebuild(dict(picture), secrets)


def _hint(secret: Any) -> str:
    return secret_hint(secret) if isinstance(secret, str) else "…"


def secret_names(spec: StoreSpec, picture: dict[str, Any], box: SecretBox) -> dict[str, str]:
    """The image's stored secrets, each as its display hint (column name or secret path -> ghp_…abcd): nothing in
    clear."""
    if _generic_image(picture):
        return {name: _hint(value) for name, value in stored_secrets(spec, picture, box).items()}
    hints = {
        column.name: picture.get(f"{column.name}_hint") or "…"
        for column in spec.mapper.columns
        if column.secret and picture.get(f"{column.name}_encrypted") is not None
    }
    return hints | {path: _hint(value) for path, value in _path_secrets(spec, picture, box).items()}


def stored_secrets(spec: StoreSpec, picture: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """An image's secrets, decrypted (column name or secret path -> value)."""
    if _generic_image(picture):
        return _decrypted(box, picture["secrets_encrypted"])
    secrets: dict[str, Any] = {}
    for column in spec.mapper.columns:
        ciphertext = picture.get(f"{column.name}_encrypted") if column.secret else None
        if ciphertext is not None:
            secrets[column.name] = box.decrypt(ciphertext)
    return secrets | _path_secrets(spec, picture, box)


def _path_secrets(spec: StoreSpec, picture: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """The secrets at secret paths of an image of a store's own table (secret path -> value)."""
    return _decrypted(box, picture.get("secrets_encrypted")) if spec.mapper.nested_secrets else {}


def _decrypted(box: SecretBox, ciphertext: str | None) -> dict[str, Any]:
    decrypted: dict[str, Any] = {} if ciphertext is None else json.loads(box.decrypt(ciphertext))
    return decrypted
