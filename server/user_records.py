"""A user's migrated records as the read endpoints serve them, cached per user in Redis.

The cache entry of a user is one hash, `lsmigrate:user:<user id>`, holding a
version and the JSON list of each kind (tasks, environments); see
lsmigrate.server.cache for the version rule.

- Write-through (`records_changed`, called after every commit that changed
  the user's rows): bump the version, which drops the cached lists; read both
  kinds from the database; store them under that version. A batch in the
  middle of a session only bumps (`write_through=False`): re-reading all of
  the user's rows after each batch would make a session quadratic; the
  session's `complete`, a conflict's resolution and a rollback write the
  snapshot through.
  The bump comes after the commit and before the read, so a snapshot stored
  under version n holds every commit whose bump returned n or less, and a
  writer that read before a later commit is refused, never overwriting the
  newer snapshot.
- Cache-aside (`user_records`): a hit is served; on a miss the database is
  read and the list stored only if the version has not moved since the
  cache was asked, so a reader cannot put back what a writer just replaced.

Only what the read endpoints return is cached: never a `*_encrypted` column
(the GitHub token), only `has_github_token` and the token's hint. A kind
holding more than CACHE_MAX_RECORDS rows is not cached at all: rewriting
it after every batch would cost more than it saves.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Table, func, select

from lsmigrate.server.extensions import cache, db
from lsmigrate.server.models import Environment, Task

_KINDS: dict[str, Table] = {"tasks": Task.__table__, "environments": Environment.__table__}
# Never served: bookkeeping, and every `<secret>_encrypted` column (served as `has_<secret>` only).
_HIDDEN = {"user_id", "source_digest", "migration_session_id"}
_SECRET_SUFFIX = "_encrypted"


def user_cache_key(user_id: str) -> str:
    """The Redis hash holding `user_id`'s cached records."""
    return f"lsmigrate:user:{user_id}"


def records_changed(user_id: str, *, write_through: bool = True) -> None:
    """Called after a commit that changed `user_id`'s migrated rows: drop the old snapshot, write the new one."""
    key = user_cache_key(user_id)
    version = cache.bump(key)
    if version is None or not write_through:
        return  # no Redis, or it is down: the bump is replayed when it is back, and the TTL bounds the rest
    limit = current_app.config["CACHE_MAX_RECORDS"]
    # A kind with more rows than the limit is left uncached: reading and
    # encoding it after every batch would cost more than the reads it saves.
    snapshot = {kind: _from_database(user_id, kind) for kind in _KINDS if _count(user_id, kind) <= limit}
    if snapshot:
        cache.write(key, version, snapshot)


def user_records(user_id: str, kind: str) -> list[dict[str, Any]]:
    """`user_id`'s tasks or environments (no secrets), from the cache when it has them."""
    key = user_cache_key(user_id)
    entry = cache.read(key, kind)
    if entry is not None and entry.value is not None:
        return entry.value  # type: ignore[no-any-return]
    records = _from_database(user_id, kind)
    if entry is not None and len(records) <= current_app.config["CACHE_MAX_RECORDS"]:
        cache.write(key, entry.version, {kind: records})
    return records


def _count(user_id: str, kind: str) -> int:
    table = _KINDS[kind]
    return db.session.scalar(select(func.count()).select_from(table).where(table.c.user_id == user_id)) or 0


def _from_database(user_id: str, kind: str) -> list[dict[str, Any]]:
    table = _KINDS[kind]
    shown = [c for c in table.columns if c.name not in _HIDDEN and not c.name.endswith(_SECRET_SUFFIX)]
    flags = [
        c.is_not(None).label("has_" + c.name.removesuffix(_SECRET_SUFFIX))
        for c in table.columns
        if c.name.endswith(_SECRET_SUFFIX)
    ]
    query = select(*shown, *flags).where(table.c.user_id == user_id).order_by(table.c.created_at, table.c.id)
    return [{name: _json_value(value) for name, value in row.items()} for row in db.session.execute(query).mappings()]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
