"""Whose id a record gets when its id is already another user's row (design §5 foreign_id, §12).

A record's row id is public: a UUID source id is kept, any other id is derived
from (user id, store, source id). So another user can upload a row under it
first. The record then moves to its *relocated* id, which must be out of that
user's reach: it is keyed by a secret of this deployment (the relocation salt,
made once at random and kept in the database, `lsmigrate_salts`, so it never
changes with key rotation), as uuid(HMAC-SHA256(salt, "<user>\\n<store>\\n!<id>")).
No one without the database can compute it, so no one can pre-claim it.

Rows relocated before the salt existed sit at the unkeyed relocated id
(`shared.ids.relocated_id`): that one is still found first, so a record
migrated again lands on its own row, never beside it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable

from flask import current_app
from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lsmigrate.server.db import db
from lsmigrate.server.db.models import Salt
from lsmigrate.shared.ids import relocated_id

RELOCATION = "relocation"
_CACHE = "lsmigrate_salts"


def relocation_salt() -> bytes:
    """This deployment's relocation salt: read from the database (made there the first time it is needed)."""
    cache: dict[str, bytes] = current_app.extensions.setdefault(_CACHE, {})
    if RELOCATION in cache:
        return cache[RELOCATION]
    query = select(Salt.value).where(Salt.name == RELOCATION)
    found = db.session.scalar(query)
    if found is not None:
        cache[RELOCATION] = bytes.fromhex(found)  # committed by someone before: it never changes
        return cache[RELOCATION]
    # A database made without the migrations (create_all): made here, in this transaction, first writer wins.
    dialect = db.session.get_bind().dialect.name
    row = {"name": RELOCATION, "value": secrets.token_hex(32)}
    if dialect == "postgresql":
        db.session.execute(postgresql_insert(Salt).values(row).on_conflict_do_nothing())
    elif dialect == "sqlite":
        db.session.execute(sqlite_insert(Salt).values(row).on_conflict_do_nothing())
    else:
        db.session.execute(insert(Salt).values(row))
    return bytes.fromhex(db.session.scalar(query) or row["value"])  # not cached: this transaction may roll back


def keyed_relocated_id(salt: bytes, user_id: str, store: str, taken_id: uuid.UUID) -> uuid.UUID:
    """The relocated id of a record of `user_id` whose id `taken_id` another user's row holds."""
    name = f"{user_id}\n{store}\n!{taken_id}".encode("utf-8", "surrogatepass")
    return uuid.UUID(bytes=hmac.new(salt, name, hashlib.sha256).digest()[:16], version=4)


def relocation_candidates(salt: bytes, user_id: str, store: str, taken_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """Where the record may be: (its row from before the salt, the keyed relocated id)."""
    return uuid.UUID(relocated_id(user_id, store, str(taken_id))), keyed_relocated_id(salt, user_id, store, taken_id)


def relocate(
    candidates: tuple[uuid.UUID, uuid.UUID], owner: Callable[[uuid.UUID], str | None], user_id: str
) -> uuid.UUID | None:
    """The id the record takes: its own row from before the salt, else the keyed id unless another user's row
    holds it (only someone with the salt could do that); None when both are another user's.
    `owner(id)` is the user whose row has that id, None when there is no such row."""
    legacy, keyed = candidates
    if owner(legacy) == user_id:
        return legacy
    return keyed if owner(keyed) in (None, user_id) else None
