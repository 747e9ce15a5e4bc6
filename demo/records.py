"""GET /api/tasks and /api/environments: a user's migrated records, cached per user in Redis.

The demo's read API. It subscribes to lsmigrate's `records_changed` signal.

The cache entry of a user is one hash, `lsmigrate:{u:<user tag>}:records` (`cache.user_key`), holding
the JSON list of each kind (tasks, environments) and the user's data version
they were read at (lsmigrate.server.signals): a database-versioned entry of
lsmigrate.server.cache. The data version is advanced in every transaction
that changes the user's rows, lsmigrate's and the host's alike, and read
from the database before the rows a list is built from, so a list holds that
version's rows or a later one's.

- A read (`user_records`) reads the data version (one primary-key lookup)
  and serves the cached list only if the entry holds that version; otherwise
  it reads the rows and stores them under it, beside the other kind's list of
  the same version or in place of an older entry. So a cached list is served
  only while no commit changed the user's rows since it was read: a lost
  invalidation, a Redis restored from an old snapshot or flushed, or a worker
  that never heard of a commit cannot serve a stale list, not even for a
  moment. Redis down: the database answers and the version is not read.
- Write-through (`records_changed`, on the signal sent after a commit that
  changed the user's rows): the new version and both kinds are read and
  stored, so the first read after `complete`, a conflict's resolution or a
  rollback finds them. A batch in the middle of a session does nothing
  (`write_through=False`): re-reading all of the user's rows after each batch
  would make a session quadratic, and the version it advanced already keeps
  the old lists from being served.
- An older version never overwrites a newer one: a reader or writer that read
  before a later commit is refused, and does not put back what a later writer
  stored.

Only what the read endpoints return is cached: never a `*_encrypted` column
(the GitHub token), only `has_github_token` and the token's hint. A kind
holding more than CACHE_MAX_RECORDS rows is not cached at all: rewriting
it after every commit would cost more than it saves.

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
from lsmigrate.server.cache import cache, user_key
from lsmigrate.server.db import db
from lsmigrate.server.extension import settings
from lsmigrate.server.signals import data_version
from lsmigrate.server.signals import records_changed as records_changed_signal

_KINDS: dict[str, Table] = {"tasks": Task.__table__, "environments": Environment.__table__}
# Never served: bookkeeping, and every `<secret>_encrypted` column (served as `has_<secret>` only).
_HIDDEN = {"user_id", "source_digest", "migration_session_id"}
_SECRET_SUFFIX = "_encrypted"


def user_cache_key(user_id: str) -> str:
    """The Redis hash holding `user_id`'s cached records."""
    return user_key(user_id, "records")


def records_changed(user_id: str, *, write_through: bool = True) -> None:
    """Called after a commit that changed `user_id`'s migrated rows: store the new snapshot, unless the commit was
    a batch in the middle of a session."""
    if not write_through or not cache.available:
        return  # the advanced data version keeps the old snapshot from being served
    version = data_version(user_id)  # before the rows: they are this version's or a later one's
    # A kind with more rows than the limit is left uncached: reading and
    # encoding it after every commit would cost more than the reads it saves.
    limit = settings()["CACHE_MAX_RECORDS"]
    snapshot = {kind: _from_database(user_id, kind, limit + 1) for kind in _KINDS}
    cached = {kind: _as_json(records) for kind, records in snapshot.items() if len(records) <= limit}
    if cached:
        cache.store(user_cache_key(user_id), version, cached)


def user_records(user_id: str, kind: str) -> bytes:
    """`user_id`'s tasks or environments (no secrets) as a JSON array, from the cache when it is fresh."""
    key = user_cache_key(user_id)
    entry = cache.read(key, kind)
    if entry is None:  # no Redis, or it is failing
        return _as_json(_from_database(user_id, kind))
    version = data_version(user_id)  # before the rows, as the writer of the snapshot read it
    if entry.value is not None and entry.version == str(version):
        return entry.value
    records = _from_database(user_id, kind)
    text = _as_json(records)
    if len(records) <= settings()["CACHE_MAX_RECORDS"]:
        cache.store(key, version, {kind: text})
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
