"""Revoked bearer tokens: one token by its id (`jti`), or every token of a user issued before a moment.

PostgreSQL holds the revocations (`revoked_tokens`, `token_cutoffs`) and is the authority. Redis holds a
copy of each user's, so that checking a token costs one Redis read and no database round trip: one cache
entry per user (`lsmigrate:{u:<user tag>}:revocations`, `cache.user_key`, field `state`, the JSON
`{"not_before": seconds since the epoch | null, "jtis": [ids of revoked tokens not yet expired]}`).

- A request whose user has no entry reads PostgreSQL and writes the entry back under the version it read
  (`cache.write`): a revocation committed meanwhile bumps the version, so the older answer is refused.
- A revocation commits in PostgreSQL first, then bumps the user's entry (its values dropped).
- With no Redis, or Redis failing, every check reads PostgreSQL: a token is never accepted because Redis
  could not say it was revoked.

An entry lives CACHE_TTL_SECONDS after it was created or bumped. A revocation whose bump could not reach
Redis (the `revoke` command says so and fails) holds everywhere once that stale entry expires.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select

from lsmigrate.server.cache import cache, user_key
from lsmigrate.server.db import db
from lsmigrate.server.db.models import RevokedToken, TokenCutoff
from lsmigrate.server.extension import settings

_FIELD = "state"


def _key(user_id: str) -> str:
    return user_key(user_id, "revocations")


def _stored(user_id: str) -> dict[str, Any]:
    """The user's revocations as PostgreSQL holds them."""
    not_before = db.session.scalar(select(TokenCutoff.not_before).where(TokenCutoff.user_id == user_id))
    jtis = db.session.scalars(
        select(RevokedToken.jti).where(RevokedToken.user_id == user_id, RevokedToken.expires_at > datetime.now(UTC))
    ).all()
    return {"not_before": None if not_before is None else not_before.timestamp(), "jtis": sorted(jtis)}


def _state(user_id: str) -> dict[str, Any]:
    key = _key(user_id)
    entry = cache.read(key, _FIELD)
    if entry is not None and entry.value is not None:
        try:
            cached: dict[str, Any] = json.loads(entry.value)
            return cached
        except ValueError:
            pass  # not what this module writes: PostgreSQL answers, and the entry is written anew
    state = _stored(user_id)
    if entry is not None:  # Redis answered: fill it, unless a revocation bumped the entry since it was read
        cache.write(key, entry.version, {_FIELD: json.dumps(state).encode()})
    return state


def is_revoked(user_id: str, jti: str, issued_at: float) -> bool:
    """True when token `jti` of `user_id`, issued at `issued_at` (seconds since the epoch), was revoked."""
    state = _state(user_id)
    not_before = state["not_before"]
    return jti in state["jtis"] or (not_before is not None and issued_at < not_before)


def _told_redis(user_id: str) -> bool:
    """Drop the user's cached revocations; False when Redis is configured and could not be reached."""
    return cache.bump(_key(user_id)) is not None or current_app.extensions.get("lsmigrate_cache") is None


def revoke_token(user_id: str, jti: str, expires_at: datetime) -> bool:
    """Refuse token `jti` of `user_id` from now until it expires; False when Redis could not be told."""
    now = datetime.now(UTC)
    if db.session.get(RevokedToken, (user_id, jti)) is None:
        db.session.add(RevokedToken(jti=jti, user_id=user_id, expires_at=expires_at, revoked_at=now))
    _forget_moot(now)
    db.session.commit()
    return _told_redis(user_id)


def _forget_moot(now: datetime) -> None:
    """Forget revocations that no longer refuse anything: of tokens expired since, and cutoffs older than
    TOKEN_MAX_AGE (every token issued before one is refused by its signed age anyway)."""
    db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
    oldest = now - timedelta(seconds=settings()["TOKEN_MAX_AGE"])
    db.session.execute(delete(TokenCutoff).where(TokenCutoff.not_before < oldest))


def revoke_user(user_id: str) -> tuple[datetime, bool]:
    """Refuse every token of `user_id` issued until now; (that moment, False when Redis could not be told)."""
    now = datetime.now(UTC)
    cutoff = db.session.get(TokenCutoff, user_id, with_for_update=True)
    if cutoff is None:
        db.session.add(TokenCutoff(user_id=user_id, not_before=now))
    else:
        cutoff.not_before = max(cutoff.not_before, now)
    _forget_moot(now)
    db.session.commit()
    return now, _told_redis(user_id)
