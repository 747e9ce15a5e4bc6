"""A row's digest: the fingerprint of a row's content that rollback compares with the ledger's (design §12).

Every write of a row by lsmigrate (a batch, "keep local", a rollback putting a
pre-image back) keeps the digest of the row as it left it; every record a
session found `unchanged` or kept as the server had it keeps the digest of the
row it relied on. A row whose digest is no longer the one lsmigrate left was
changed by someone else: the app, an operator, a script. Rollback leaves it.

The digest covers every column of the row but the ciphertexts (`*_encrypted`),
which `rotate-keys` rewrites without changing what they hold; a secret's hint
column is covered. It is computed where the row is read: on PostgreSQL in the
query itself, by `hash_record_extended` over the row's columns (64 bits of
PostgreSQL's own hash of each value as stored: a time is hashed as the instant,
never as text in the session's TimeZone; a type with no hash function, such as
plain `json`, as its text), which costs about a microsecond a row; elsewhere
(SQLite) from the row's image in Python, sha256. The two are never compared
with each other: one database, one way. It tells a change from no change, not
an adversary's forgery: whoever can write the row can do anything to it anyway.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Table, literal_column, select

from lsmigrate.server.db import db
from lsmigrate.server.db.sql import among
from lsmigrate.server.records.rows import image
from lsmigrate.shared.canonical import canonical_json


def _ciphertexts(table: Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.columns if column.name.endswith("_encrypted"))


#: Column types (their DDL names) PostgreSQL hashes by value, whatever the session's settings; any other
#: (plain `json`, which has no hash function, or a type unknown here) is hashed as its text.
_HASHED = frozenset(
    {
        "UUID",
        "BOOLEAN",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "NUMERIC",
        "REAL",
        "FLOAT",
        "DOUBLE PRECISION",
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMP WITHOUT TIME ZONE",
        "TIMESTAMP",
        "DATE",
        "JSONB",
        "TEXT",
        "VARCHAR",
    }
)


@functools.cache
def _expression_text(table: Table) -> str:
    dialect = db.engine.dialect
    quote = dialect.identifier_preparer.quote
    name = quote(table.name)
    skipped = set(_ciphertexts(table))
    parts = []
    for column in table.columns:
        if column.name in skipped:
            continue
        reference = f"{name}.{quote(column.name)}"
        if column.type.compile(dialect=dialect).split("(")[0] not in _HASHED:
            reference = f"CAST({reference} AS text)"
        parts.append(reference)
    return f"CAST(hash_record_extended(ROW({', '.join(parts)}), 0) AS text)"


def digest_column(model: Any) -> ColumnElement[str] | None:
    """The digest as a column of a query over `model`'s table (PostgreSQL); None where it is computed in Python."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    return literal_column(_expression_text(model.__table__))


def image_digest(model: Any, row: Any) -> str:
    """The digest of a row read whole (a SQLAlchemy Row of the table), computed in Python."""
    skipped = set(_ciphertexts(model.__table__))
    picture = {name: value for name, value in image(model, row).items() if name not in skipped}
    return hashlib.sha256(canonical_json(picture).encode("utf-8", "surrogatepass")).hexdigest()


def row_digests(model: Any, user_id: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The digest of each of the user's rows with these ids (the ids of rows that are not there are left out)."""
    wanted = list(ids)
    if not wanted:
        return {}
    table = model.__table__
    mine = (among(table.c.id, wanted), table.c.user_id == user_id)
    column = digest_column(model)
    if column is not None:
        return {row_id: found for row_id, found in db.session.execute(select(table.c.id, column).where(*mine))}
    return {row.id: image_digest(model, row) for row in db.session.execute(select(table).where(*mine))}
