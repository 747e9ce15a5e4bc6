"""A small Redis extension: versioned cache entries, and what happens when Redis fails.

An entry is one Redis hash: a `version` field beside the cached values. Its
version comes from one of two places.

From Redis, for an entry a commit invalidates (the revoked tokens):

    bump(key)                    a new version, and the values dropped
    write(key, version, values)  stores them only while `version` is current

From the caller's database, for an entry built from rows whose version the
database keeps in the same transactions as the rows (a user's records: the
user data version of lsmigrate.server.signals):

    store(key, version, values)  stores them beside values of that version, in place of older ones,
                                 never over newer ones

And for both:

    read(key, field)             the entry's version and the field's value, if any

Values are bytes (JSON text, as the callers keep them): stored and handed
back as they are.

A bump is a script, atomic in Redis; a write and a store are optimistic
transactions (WATCH the hash, check its version, MULTI/EXEC the values),
refused if the hash changed in between. So a writer holding an old version (it
read the database before somebody else's commit) can never overwrite what a
newer writer stored. Versions only grow: Redis's by HINCRBY (a hash that lost
its version starts again from the server's clock in microseconds, above any
version handed out before), a database's as its commits advance it; a write is
refused unless its version is the current one, a store if its version is older.
(A write was a script too, but a script copies its arguments into Lua and
back: twice the Redis CPU for a snapshot of several megabytes.)

Which version is fresh differs:

- A Redis-versioned entry is trusted as Redis holds it. So a commit whose bump
  could not reach Redis leaves a stale entry, bounded in time: a hash expires
  CACHE_TTL_SECONDS after it was created or last bumped (writes never extend
  that), and failed bumps are remembered by the process and replayed before
  its first operation once Redis answers again.
- A database-versioned entry is served only when its version equals the one
  the caller has just read from its database (in the transaction it would
  rebuild the entry in). Nothing Redis holds or loses can make it stale: an
  invalidation lost with Redis down, a Redis restored from an old snapshot or
  flushed, a worker that never heard of a commit all leave an entry whose
  version is not the database's, and the caller rebuilds it. So such an entry
  is never bumped, and no failed invalidation of it needs remembering or
  replaying (the replay above stays for Redis-versioned entries alone); its
  TTL (from when it was created or replaced by a newer version) only frees the
  memory of users who stopped reading.

Redis is optional and never on the critical path: with no REDIS_URL the cache
is off, and when Redis fails every call degrades (reads miss, writes are
skipped), one warning is logged per outage, and the cache leaves Redis alone
for CACHE_RETRY_SECONDS so that an unreachable server costs few timeouts.
Reads are counted as hits, misses or bypasses (no Redis, or Redis failing), and
every failed operation too (`lsmigrate.server.observability.metrics`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.retry import Retry

from lsmigrate.server.observability.metrics import count_cache_request, count_redis_failure

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Past this many, failed bumps are no longer remembered; the TTL still bounds them.
PENDING_LIMIT = 10_000

# KEYS[1] the hash; ARGV[1] its TTL. Drops every value, returns the new version.
_BUMP = """
local version = redis.call('HGET', KEYS[1], 'version')
if not version then
  -- microseconds since the epoch: above any version handed out before, and exact in Lua's doubles
  local now = redis.call('TIME')
  version = now[1] .. string.format('%06d', tonumber(now[2]))
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', version)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'version', 1)
"""


def user_hash_tag(user_id: str) -> str:
    """`{u:<24 hex>}`: the hash tag every Redis key of one user carries, so that a Redis Cluster keeps them in
    one slot. A digest of the id, not the id: an id may hold a brace, which would end the tag early."""
    return "{u:" + hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:24] + "}"


def user_key(user_id: str, kind: str) -> str:
    """The Redis key of one user's entry of `kind` (`lsmigrate:{u:…}:kind`)."""
    return f"lsmigrate:{user_hash_tag(user_id)}:{kind}"


@dataclass(frozen=True)
class Entry:
    """What `read` found: the hash's version ('' when it has none) and the field's value (None when absent)."""

    version: str
    value: bytes | None


class RedisCache:
    """Flask extension keeping a Redis client and its health in `app.extensions["lsmigrate_cache"]`."""

    def init_app(self, app: Flask, settings: Mapping[str, Any]) -> None:
        """Bind to an app (None there without REDIS_URL); the client connects lazily on first use."""
        url = settings.get("REDIS_URL")
        state = None
        if url:
            # One immediate retry gets past a pooled connection Redis closed;
            # more would only make an outage slower.
            client = redis.Redis.from_url(
                url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 1)
            )
            state = _Redis(
                client, ttl=int(settings["CACHE_TTL_SECONDS"]), retry_seconds=float(settings["CACHE_RETRY_SECONDS"])
            )
        app.extensions["lsmigrate_cache"] = state

    @property
    def _redis(self) -> _Redis | None:
        state: _Redis | None = current_app.extensions["lsmigrate_cache"]
        return state

    def read(self, key: str, field: str) -> Entry | None:
        """The entry's version and `field`'s value; None with no Redis or when Redis fails."""
        state = self._redis
        if state is None:
            count_cache_request("bypass")
            return None
        found = state.call(lambda client: cast(list[Any], client.hmget(key, ["version", field])))
        if found is None:
            count_cache_request("bypass")
            return None
        version, raw = found
        count_cache_request("miss" if raw is None else "hit")
        return Entry(version.decode() if version else "", raw)

    def bump(self, key: str) -> str | None:
        """Drop the entry's values and return its new version; None with no Redis or when Redis fails."""
        state = self._redis
        if state is None:
            return None
        version = state.call(lambda client: state.bump(key, client))
        if version is None:
            state.remember(key)
            return None
        return str(version)

    def write(self, key: str, version: str, values: Mapping[str, bytes]) -> bool:
        """Store `values` if `version` is still the entry's; False when refused or Redis fails."""
        state = self._redis
        if state is None:
            return False
        return bool(state.call(lambda client: state.write(key, version, values, client)))

    def store(self, key: str, version: int, values: Mapping[str, bytes]) -> bool:
        """Store `values`, built from the caller's database at `version`, unless the entry holds a newer version;
        False when refused or Redis fails."""
        state = self._redis
        if state is None:
            return False
        return bool(state.call(lambda client: state.store(key, version, values, client)))

    @property
    def available(self) -> bool:
        """True when the app has Redis and it has not failed a moment ago: worth building values to store."""
        state = self._redis
        return state is not None and not state.resting()

    def report_failure(self, error_name: str) -> bool:
        """Another user of Redis (the rate limiter) found it unreachable; False when the cache has no Redis."""
        state = self._redis
        if state is None:
            return False
        state.failed(error_name)
        return True


class _Redis:
    """One app's client, its scripts, and whether (and since when) Redis is failing."""

    def __init__(self, client: redis.Redis, *, ttl: int, retry_seconds: float) -> None:
        self.client = client
        self.ttl = ttl
        self.retry_seconds = retry_seconds
        self.bump_script = client.register_script(_BUMP)
        self.down = False
        self.retry_at = 0.0
        self.pending: set[str] = set()
        self.lock = threading.Lock()

    def bump(self, key: str, client: Any) -> Any:
        """Run the bump script on `client` (a Redis client or a pipeline)."""
        return self.bump_script(keys=[key], args=[self.ttl], client=client)

    def write(self, key: str, version: str, values: Mapping[str, bytes], client: redis.Redis) -> bool:
        """Store `values` in the hash if its version is `version`, giving a new hash the TTL; False if not."""
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                # Watched, a pipeline runs commands at once and answers them (redis-py's typing says otherwise).
                current = cast(bytes | None, pipe.hget(key, "version"))
                ttl = cast(int, pipe.ttl(key))
                if (current.decode() if current else "") != version:
                    return False
                pipe.multi()
                pipe.hset(key, mapping=dict(values))
                if ttl < 0:  # a new hash (a reader's first fill): it expires like any other
                    pipe.expire(key, self.ttl)
                pipe.execute()
            except redis.WatchError:
                return False  # the hash changed after the version was checked
        return True

    def store(self, key: str, version: int, values: Mapping[str, bytes], client: redis.Redis) -> bool:
        """Store `values` at `version`: beside the hash's values of that version, in place of older ones (the
        hash given the TTL again); False if the hash holds a newer version."""
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                held = _number(cast(bytes | None, pipe.hget(key, "version")))
                ttl = cast(int, pipe.ttl(key))
                if held is not None and held > version:
                    return False
                pipe.multi()
                if held != version:  # no values, or older ones (or not this module's): none may stay beside these
                    pipe.delete(key)
                pipe.hset(key, mapping={"version": str(version), **values})
                if held != version or ttl < 0:
                    pipe.expire(key, self.ttl)
                pipe.execute()
            except redis.WatchError:
                return False  # the hash changed after the version was checked
        return True

    def resting(self) -> bool:
        """True while the cache leaves Redis alone after a failure."""
        return self.down and time.monotonic() < self.retry_at

    def call(self, operation: Callable[[redis.Redis], T]) -> T | None:
        """operation(client), or None when Redis failed a moment ago or fails now."""
        if self.resting():
            return None
        try:
            self._replay_pending()
            result = operation(self.client)
        except redis.RedisError as error:
            self.failed(type(error).__name__)
            return None
        self._recovered()
        return result

    def remember(self, key: str) -> None:
        """A bump of `key` could not reach Redis: replay it when Redis answers again."""
        with self.lock:
            if len(self.pending) < PENDING_LIMIT:
                self.pending.add(key)

    def failed(self, error_name: str) -> None:
        """Log the outage once, and leave Redis alone for a while."""
        count_redis_failure()
        with self.lock:
            if not self.down:
                # The error's class only: its text may name the server, never a record or a secret.
                log.warning(
                    "Redis is unreachable (%s): reads are served from the database and rate limits "
                    "kept in this process until it answers again",
                    error_name,
                )
            self.down = True
            self.retry_at = time.monotonic() + self.retry_seconds

    def _recovered(self) -> None:
        with self.lock:
            if self.down:
                log.info("Redis is reachable again")
            self.down = False

    def _replay_pending(self) -> None:
        if not self.pending:
            return
        with self.lock:
            keys = list(self.pending)
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            self.bump(key, pipe)
        pipe.execute()
        with self.lock:
            self.pending.difference_update(keys)


def _number(raw: bytes | None) -> int | None:
    """A hash's version as a number; None when it has none, or one that is not a number."""
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None


#: The app-wide cache: `LSMigrate.init_app` binds it to each app (no Redis there without REDIS_URL).
cache = RedisCache()
