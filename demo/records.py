"""GET /api/tasks and /api/environments: a user's migrated records, cached per user in Redis.

The demo's read API. It subscribes to lsmigrate's `records_changed` signal.

The cache entry of a user is one hash, `lsmigrate:user:<user id>`, holding a
version and the JSON list of each kind (tasks, environments); see
lsmigrate.server.cache for the version rule.

- Write-through (`records_changed`, on the signal sent after every commit that changed
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

A kind's records travel as JSON text, the endpoint's list as it is sent:
built once from the rows (JSON columns spliced in as the database's own
text, never decoded), stored in Redis as that text, and served from there
without being decoded and encoded again.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Flask, Response, g
from sqlalchemy import JSON, Table, Text, cast, select

from lsmigrate.demo.models import Environment, Task
from lsmigrate.server.api.auth import authenticate
from lsmigrate.server.cache import cache
from lsmigrate.server.db import db
from lsmigrate.server.extension import settings
from lsmigrate.server.signals import records_changed as records_changed_signal

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
    # A kind with more rows than the limit is left uncached: reading and
    # encoding it after every batch would cost more than the reads it saves.
    limit = settings()["CACHE_MAX_RECORDS"]
    snapshot = {kind: _from_database(user_id, kind, limit + 1) for kind in _KINDS}
    cached = {kind: _as_json(records) for kind, records in snapshot.items() if len(records) <= limit}
    if cached:
        cache.write(key, version, cached)


def user_records(user_id: str, kind: str) -> bytes:
    """`user_id`'s tasks or environments (no secrets) as a JSON array, from the cache when it has them."""
    key = user_cache_key(user_id)
    entry = cache.read(key, kind)
    if entry is not None and entry.value is not None:
        return entry.value
    records = _from_database(user_id, kind)
    text = _as_json(records)
    if entry is not None and len(records) <= settings()["CACHE_MAX_RECORDS"]:
        cache.write(key, entry.version, {kind: text})
    return text


def _from_database(user_id: str, kind: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The user's records of `kind` (the first `limit` of them), JSON columns as their text, undecoded."""
    table = _KINDS[kind]
    shown = [c for c in table.columns if c.name not in _HIDDEN and not c.name.endswith(_SECRET_SUFFIX)]
    selected = [cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in shown]
    documents = [index for index, c in enumerate(shown) if isinstance(c.type, JSON)]
    flags = [
        c.is_not(None).label("has_" + c.name.removesuffix(_SECRET_SUFFIX))
        for c in table.columns
        if c.name.endswith(_SECRET_SUFFIX)
    ]
    query = select(*selected, *flags).where(table.c.user_id == user_id).order_by(table.c.created_at, table.c.id)
    if limit is not None:
        query = query.limit(limit)
    names = [str(column.name) for column in (*shown, *flags)]  # plain str: SQLAlchemy's names are a subclass
    records = []
    for row in db.session.execute(query):
        values: list[Any] = list(row)
        for index in documents:
            if values[index] is not None:
                values[index] = orjson.Fragment(values[index])
        records.append(dict(zip(names, values, strict=True)))
    return records


def _as_json(records: list[dict[str, Any]]) -> bytes:
    """Records as a JSON array: dates in ISO 8601 (datetime.isoformat's text), ids as text, keys sorted."""
    return orjson.dumps(records, option=orjson.OPT_SORT_KEYS)


bp = Blueprint("records", __name__, url_prefix="/api")
bp.before_request(authenticate)


def _listing(kind: str) -> Response:
    # The records are JSON text already (see above): wrapped, not decoded and encoded again.
    body = b'{"' + kind.encode("ascii") + b'":' + user_records(g.user_id, kind) + b"}\n"
    return Response(body, mimetype="application/json")


@bp.get("/tasks")
def list_tasks() -> Response:
    """The user's tasks."""
    return _listing("tasks")


@bp.get("/environments")
def list_environments() -> Response:
    """The user's environments; the GitHub token is never returned, only its hint."""
    return _listing("environments")


def _on_records_changed(app: Flask, *, user_id: str, write_through: bool) -> None:
    records_changed(user_id, write_through=write_through)


def subscribe(app: Flask) -> None:
    """Keep `app`'s per-user snapshot up to date with its migrations."""
    records_changed_signal.connect(_on_records_changed, sender=app, weak=False)
