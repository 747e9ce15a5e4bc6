"""A small Redis extension: the per-user cache the read endpoints serve from.

Redis is optional and never on the critical path: with no REDIS_URL the
cache is off, and when Redis fails every call degrades to a miss (reads go
to the database) with one warning logged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from flask import Flask, current_app

log = logging.getLogger(__name__)

TTL_SECONDS = 3600


class RedisCache:
    """Flask extension holding a Redis client in `app.extensions["lsmigrate_cache"]`."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Bind to an app; the client connects lazily on first use."""
        url = app.config.get("REDIS_URL")
        client = None
        if url:
            client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        app.extensions["lsmigrate_cache"] = _CacheState(client)

    @property
    def _state(self) -> _CacheState:
        state: _CacheState = current_app.extensions["lsmigrate_cache"]
        return state

    def get_json(self, key: str) -> Any | None:
        """The cached JSON value, or None on a miss, with no Redis, or when Redis fails."""
        state = self._state
        if state.client is None:
            return None
        try:
            raw = state.client.get(key)
        except redis.RedisError as error:
            state.failed(error)
            return None
        state.recovered()
        return None if raw is None else json.loads(raw)

    def set_json(self, key: str, value: Any) -> None:
        """Cache a JSON value; a Redis failure is logged once and ignored."""
        state = self._state
        if state.client is None:
            return
        try:
            state.client.set(key, json.dumps(value, separators=(",", ":")), ex=TTL_SECONDS)
        except redis.RedisError as error:
            state.failed(error)

    def delete(self, *keys: str) -> None:
        """Drop cached values; a Redis failure is logged once and ignored."""
        state = self._state
        if state.client is None or not keys:
            return
        try:
            state.client.delete(*keys)
        except redis.RedisError as error:
            state.failed(error)


class _CacheState:
    def __init__(self, client: redis.Redis | None) -> None:
        self.client = client
        self.down = False

    def failed(self, error: redis.RedisError) -> None:
        if not self.down:
            log.warning("Redis is unavailable, serving from the database: %s", type(error).__name__)
        self.down = True

    def recovered(self) -> None:
        if self.down:
            log.info("Redis is reachable again")
        self.down = False
