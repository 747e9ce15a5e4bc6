"""A user's migrated records as the read endpoints serve them, through the cache."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lsmigrate.server.extensions import cache, db
from lsmigrate.server.models import Environment, Task

_HIDDEN = {"user_id", "source_digest", "migration_session_id", "github_token_encrypted", "meta"}
_KINDS: dict[str, Any] = {"tasks": Task, "environments": Environment}


def user_cache_keys(user_id: str) -> list[str]:
    """The cache keys holding `user_id`'s records."""
    return [f"lsmigrate:user:{user_id}:{kind}" for kind in _KINDS]


def records_changed(user_id: str) -> None:
    """Called after a commit that changed `user_id`'s migrated rows: the cache must not serve old ones."""
    cache.delete(*user_cache_keys(user_id))


def _as_json(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in record.__table__.columns:
        attribute = "meta" if column.key == "metadata" else column.key
        if attribute in _HIDDEN:
            continue
        value = getattr(record, attribute)
        out[column.key] = value.isoformat() if hasattr(value, "isoformat") else value
    out["id"] = str(record.id)
    out["metadata"] = record.meta
    if isinstance(record, Environment):
        out["has_github_token"] = record.github_token_encrypted is not None
    return out


def user_records(user_id: str, kind: str) -> list[dict[str, Any]]:
    """`user_id`'s tasks or environments (no secrets), from the cache when it has them."""
    cache_key = f"lsmigrate:user:{user_id}:{kind}"
    cached = cache.get_json(cache_key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    model = _KINDS[kind]
    query = select(model).where(model.user_id == user_id).order_by(model.created_at, model.id)
    records = [_as_json(record) for record in db.session.scalars(query)]
    cache.set_json(cache_key, records)
    return records
