"""Rate limits, with Flask-Limiter: per user, kept in Redis when there is one.

- Key: the user of the request's bearer token; without a valid one, the
  remote address (so forged tokens are limited too). Never the token itself.
  The operator page's routes count against the operator's name (a user's
  token there counts against the address), never against a user.
- Limits: RATELIMIT_DEFAULT (env LSMIGRATE_RATELIMIT_DEFAULT) on lsmigrate's
  routes but /healthz, /metrics and the page's runtime under /lsmigrate/; never on a
  host app's own routes (its own Flask-Limiter, if it has one, is its own).
- Storage: RATELIMIT_STORAGE_URI, which defaults to REDIS_URL, else memory.
- Redis down: requests never fail. Flask-Limiter falls back to counting in
  this process's memory (limits keep being enforced, per process, counted
  from zero) and goes back to Redis once it answers. Its own warning becomes
  the app's one Redis outage warning (lsmigrate.server.cache).
- Over the limit: 429 in the API's error envelope, code `rate_limited`, with
  `Retry-After` in seconds.

Flask-Limiter keeps its storage on the Limiter object, so one Limiter cannot
serve two apps: `rate_limits` is created unbound and `init_app` gives each
app its own Limiter, kept in `app.extensions["lsmigrate_limiter"]`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask, current_app, g, has_app_context, make_response, request
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter, RateLimitExceeded
from redis.backoff import NoBackoff
from redis.retry import Retry

from lsmigrate.server.api.auth import authenticate
from lsmigrate.server.cache import cache, user_hash_tag
from lsmigrate.server.errors import Unauthorized, error_response
from lsmigrate.server.operator.auth import require_operator

#: lsmigrate's blueprints whose routes are never limited: the health check, what the page loads, and the
#: operator's scrape (an operator's token names no user: it would count against the address, a proxy's).
EXEMPT_BLUEPRINTS = frozenset({"lsmigrate.health", "lsmigrate.runtime", "lsmigrate.observability"})
#: The operator page's blueprint: its calls count against the operator, never against a user.
OPERATOR_BLUEPRINT = "lsmigrate.operator"
#: The blueprints whose routes are lsmigrate's (and its demo preset's): only these are limited.
LIMITED_ROOTS = frozenset({"lsmigrate", "lsmigrate_demo"})


def rate_limit_key() -> str:
    """Whom a request counts against: its bearer token's user (an operator route: its operator, never a user),
    else its remote address."""
    if OPERATOR_BLUEPRINT in request.blueprints:
        try:
            return f"operator:{require_operator()}"
        except Unauthorized:
            return f"address:{request.remote_addr or 'unknown'}"  # a user's token too: the view answers 401
    try:
        authenticate()
        return f"user:{user_hash_tag(g.user_id)}"  # one Redis Cluster slot with the user's other keys
    except Unauthorized:
        pass  # counted against the address; the view answers 401
    return f"address:{request.remote_addr or 'unknown'}"


def _exempt() -> bool:
    blueprints = request.blueprints  # innermost first: ["lsmigrate.migration", "lsmigrate"]
    return not blueprints or blueprints[-1] not in LIMITED_ROOTS or blueprints[0] in EXEMPT_BLUEPRINTS


class RateLimits:
    """Flask extension: one Flask-Limiter per app, configured from app.config."""

    def init_app(self, app: Flask, settings: Mapping[str, Any]) -> None:
        """Give `app` its Limiter for lsmigrate's routes; the 429 handler is the `lsmigrate` blueprint's."""
        storage_options: dict[str, Any] = {}
        storage_uri = settings["RATELIMIT_STORAGE_URI"]
        if storage_uri.startswith(("redis://", "rediss://", "redis+unix://")):
            storage_options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retry": Retry(NoBackoff(), 1)}
        limiter = Limiter(
            key_func=rate_limit_key,
            key_prefix="lsmigrate",
            # Given here, not read from app.config: a host's own RATELIMIT_* settings are its limiter's.
            default_limits=[settings["RATELIMIT_DEFAULT"]],
            storage_uri=storage_uri,
            enabled=bool(settings["RATELIMIT_ENABLED"]),
            storage_options=storage_options,
            in_memory_fallback_enabled=True,
            swallow_errors=True,
        )
        limiter.request_filter(_exempt)
        limiter.init_app(app)
        app.extensions["lsmigrate_limiter"] = limiter
        logging.getLogger("flask-limiter").addFilter(_OUTAGE)


def _retry_after(error: RateLimitExceeded) -> int:
    """Whole seconds until the breached limit's window resets."""
    limiter: Limiter = current_app.extensions["lsmigrate_limiter"]
    breached = limiter.current_limit
    window = error.limit.limit.get_expiry()
    try:
        reset_at = breached.window.reset_time if breached is not None else None
    except redis.RedisError:
        reset_at = None  # storage lost since the hit: the whole window is an upper bound
    if reset_at is None:
        return window
    return min(window, max(1, math.ceil(reset_at - time.time())))


def too_many_requests(error: RateLimitExceeded) -> ResponseReturnValue:
    seconds = _retry_after(error)
    limit = str(error.limit.limit)
    response = make_response(
        error_response(
            429,
            "rate_limited",
            f"Too many requests: the limit is {limit}. Retry in {seconds} s.",
            {"limit": limit, "retry_after": seconds},
        )
    )
    response.headers["Retry-After"] = str(seconds)
    return response


class _OutageWarning(logging.Filter):
    """Flask-Limiter's "storage unreachable" warning, said once per outage as the app's Redis warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or "unreachable" not in record.getMessage() or not has_app_context():
            return True
        # Logged by the cache, once for the outage; kept as is when the cache has no Redis.
        return not cache.report_failure("rate limit storage")


_OUTAGE = _OutageWarning()
rate_limits = RateLimits()
