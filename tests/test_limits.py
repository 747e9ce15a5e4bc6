"""Rate limits: per user, in Redis, 429 in the error envelope, and still enforced with Redis down."""

from __future__ import annotations

import logging

import redis
from flask.testing import FlaskClient

from lsmigrate.server.cache import user_hash_tag
from tests.fixtures_services import RedisServer

TINY = "3 per minute"


def statuses(client: FlaskClient, path: str, times: int, headers: dict[str, str] | None = None) -> list[int]:
    """The statuses of `times` GETs of `path` in a row."""
    found = []
    for _ in range(times):
        with client.get(path, headers=headers or {}) as response:
            found.append(response.status_code)
    return found


def test_past_the_limit_a_request_gets_429_with_retry_after_in_the_envelope(make_app, auth, redis_server) -> None:
    client = make_app(redis_server.url, RATELIMIT_DEFAULT=TINY).test_client()
    headers = auth("alice")
    assert statuses(client, "/api/tasks", 3, headers) == [200, 200, 200]
    response = client.get("/api/tasks", headers=headers)
    assert response.status_code == 429
    assert set(response.json) == {"error"}
    error = response.json["error"]
    assert error["code"] == "rate_limited"
    assert "3 per 1 minute" in error["message"]
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["details"] == {"limit": "3 per 1 minute", "retry_after": retry_after}


def test_limits_are_per_user_and_per_address_without_a_valid_token(make_app, auth, redis_server) -> None:
    client = make_app(redis_server.url, RATELIMIT_DEFAULT=TINY).test_client()
    assert statuses(client, "/api/tasks", 4, auth("alice"))[-1] == 429
    assert statuses(client, "/api/tasks", 3, auth("bob")) == [200, 200, 200]
    forged = {"Authorization": "Bearer forged"}
    assert statuses(client, "/api/tasks", 4, forged) == [401, 401, 401, 429]
    assert client.get("/api/tasks", headers={}).status_code == 429  # the same address


def test_the_migration_protocol_is_limited_too(make_app, auth, redis_server) -> None:
    client = make_app(redis_server.url, RATELIMIT_DEFAULT="2 per minute").test_client()
    headers = auth("alice")
    for _ in range(2):
        client.post("/api/migration/sessions", json={"client_session_id": "c"}, headers=headers)
    response = client.post("/api/migration/sessions", json={"client_session_id": "c"}, headers=headers)
    assert response.status_code == 429
    assert response.json["error"]["code"] == "rate_limited"


def test_health_and_the_page_runtime_are_never_limited(make_app, redis_server) -> None:
    client = make_app(redis_server.url, RATELIMIT_DEFAULT="1 per minute").test_client()
    assert statuses(client, "/healthz", 5) == [200] * 5
    assert statuses(client, "/lsmigrate/static/demo.css", 5) == [200] * 5


def test_the_counts_live_in_redis_shared_by_every_process(make_app, auth, redis_server) -> None:
    first = make_app(redis_server.url, RATELIMIT_DEFAULT=TINY).test_client()
    second = make_app(redis_server.url, RATELIMIT_DEFAULT=TINY).test_client()
    headers = auth("alice")
    assert statuses(first, "/api/tasks", 3, headers) == [200, 200, 200]
    assert second.get("/api/tasks", headers=headers).status_code == 429
    keys = [key.decode() for key in redis.Redis.from_url(redis_server.url).scan_iter()]
    assert [key for key in keys if f"user:{user_hash_tag('alice')}" in key]
    assert not [key for key in keys if headers["Authorization"].split()[1] in key]


def test_without_redis_the_counts_are_kept_in_memory(make_app, auth) -> None:
    client = make_app(None, RATELIMIT_DEFAULT=TINY).test_client()
    assert statuses(client, "/api/tasks", 4, auth("alice")) == [200, 200, 200, 429]


def test_the_default_is_generous_enough_for_a_whole_migration(make_app, auth, redis_server) -> None:
    client = make_app(redis_server.url).test_client()
    assert set(statuses(client, "/api/tasks", 250, auth("alice"))) == {200}


def test_the_limit_comes_from_the_environment(make_app, auth, monkeypatch) -> None:
    monkeypatch.setenv("LSMIGRATE_RATELIMIT_DEFAULT", "1 per minute")
    assert statuses(make_app(None).test_client(), "/api/tasks", 2, auth("alice")) == [200, 429]


def test_with_redis_stopped_limits_are_kept_in_memory_and_nothing_fails(
    make_app, auth, own_redis: RedisServer, caplog
) -> None:
    client = make_app(own_redis.url, RATELIMIT_DEFAULT=TINY, CACHE_RETRY_SECONDS=0).test_client()
    headers = auth("alice")
    assert statuses(client, "/api/tasks", 4, headers) == [200, 200, 200, 429]
    own_redis.stop()
    # Counted again from zero in this process's memory: enforced, never a 500.
    assert statuses(client, "/api/tasks", 4, headers) == [200, 200, 200, 429]
    assert client.get("/healthz").status_code == 200
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.name for record in warnings] == ["lsmigrate.server.cache"]
    assert "Redis is unreachable" in warnings[0].getMessage()
