"""The per-user Redis cache of the read endpoints: write-through, races, Redis failing, secrets."""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from lsmigrate.demo import records as user_records
from lsmigrate.demo.records import records_changed, user_cache_key
from lsmigrate.server.cache import Entry, cache
from tests.fixtures_services import PostgresServer, RedisServer, free_port
from tests.migration_helpers import API, TOKEN, batch_body, complete, migrate, open_session, put

TASKS = [
    {"id": "task-1", "title": "One", "status": "IN_PROGRESS", "createdAt": "2024-01-01T00:00:00.000Z"},
    {"id": "task-2", "title": "Two", "status": "DONE", "createdAt": "2024-01-02T00:00:00.000Z"},
    {"id": "task-3", "title": "Three", "createdAt": "2024-01-03T00:00:00.000Z"},
]
ENVIRONMENTS = [{"id": "env-1", "name": "Production", "githubToken": TOKEN, "createdAt": "2024-01-01T00:00:00Z"}]


def execute(postgres: PostgresServer, statement: str) -> None:
    """Change the database behind the app's back (the user's data version left as it was)."""
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute(statement)


def commit_change(postgres: PostgresServer, user_id: str, statement: str) -> None:
    """Commit a change of the user's rows as every writer does: with their data version advanced."""
    with psycopg.connect(postgres.conninfo) as connection:
        connection.execute("UPDATE user_data_versions SET version = version + 1 WHERE user_id = %s", (user_id,))
        connection.execute(statement)


def cached(redis_url: str, user_id: str, kind: str) -> Any:
    """What Redis holds for the user's `kind`, decoded; None when it holds nothing."""
    raw = redis.Redis.from_url(redis_url).hget(user_cache_key(user_id), kind)
    return None if raw is None else json.loads(raw)


def titles(client: FlaskClient, headers: dict[str, str]) -> list[str]:
    response = client.get("/api/tasks", headers=headers)
    assert response.status_code == 200, response.json
    return [task["title"] for task in response.json["tasks"]]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_batch_leaves_the_snapshot_to_complete_which_writes_the_new_one_through(
    client, auth, postgres, redis_server: RedisServer
) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    assert put(client, headers, sid, 0, batch_body("task-store", TASKS[:2])).status_code == 200
    assert titles(client, headers) == ["One", "Two"]  # a miss: read from PostgreSQL, then cached
    assert [task["title"] for task in cached(redis_server.url, "alice", "tasks")] == ["One", "Two"]

    execute(postgres, "UPDATE tasks SET title = 'Edited behind its back' WHERE title = 'One'")
    assert titles(client, headers) == ["One", "Two"]  # the cached answer, not the database's

    assert put(client, headers, sid, 1, batch_body("task-store", TASKS[2:], offset=2)).status_code == 200
    assert len(cached(redis_server.url, "alice", "tasks")) == 2  # the batch wrote nothing to Redis
    assert complete(client, headers, sid, {"task-store": TASKS}).status_code == 200
    expected = ["Edited behind its back", "Two", "Three"]
    assert [task["title"] for task in cached(redis_server.url, "alice", "tasks")] == expected
    assert cached(redis_server.url, "alice", "environments") == []
    assert titles(client, headers) == expected


def test_a_cached_answer_is_the_answer_the_database_gives(client, auth, redis_server: RedisServer) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS, "environments": ENVIRONMENTS})
    from_cache = [client.get(path, headers=headers).get_data() for path in ("/api/tasks", "/api/environments")]
    redis.Redis.from_url(redis_server.url).delete(user_cache_key("alice"))
    from_database = [client.get(path, headers=headers).get_data() for path in ("/api/tasks", "/api/environments")]
    assert from_cache == from_database
    assert cached(redis_server.url, "alice", "tasks") is not None  # the miss filled it again


def test_reads_fill_the_cache_for_their_user_only(client, auth, redis_server: RedisServer) -> None:
    migrate(client, auth("alice"), {"task-store": TASKS})
    redis.Redis.from_url(redis_server.url).flushall()
    assert titles(client, auth("bob")) == []
    assert cached(redis_server.url, "bob", "tasks") == []
    assert cached(redis_server.url, "alice", "tasks") is None
    assert titles(client, auth("alice")) == ["One", "Two", "Three"]
    assert len(cached(redis_server.url, "alice", "tasks")) == 3


def test_of_two_entries_written_out_of_order_the_newer_wins(app: Flask) -> None:
    key = "lsmigrate:test:bumped"
    with app.app_context():
        older, newer = cache.bump(key), cache.bump(key)
        assert older is not None and newer is not None and int(newer) > int(older)
        assert cache.write(key, newer, {"state": b'["newer"]'})
        assert not cache.write(key, older, {"state": b'["older"]'})
        assert cache.read(key, "state") == Entry(newer, b'["newer"]')


def test_of_two_snapshots_stored_out_of_order_the_newer_wins_whole(app: Flask) -> None:
    key = user_cache_key("alice")
    with app.app_context():
        assert cache.store(key, 7, {"tasks": b'["newer"]'})
        assert not cache.store(key, 6, {"tasks": b'["older"]', "environments": b'["older"]'})
        assert cache.store(key, 7, {"environments": b'["newer"]'})  # beside the lists of its version
        assert cache.read(key, "tasks") == Entry("7", b'["newer"]')
        assert cache.read(key, "environments") == Entry("7", b'["newer"]')
        assert cache.store(key, 8, {"environments": b'["newest"]'})  # in place of every older list
        assert cache.read(key, "tasks") == Entry("8", None)


def test_a_writer_that_read_before_a_later_commit_cannot_overwrite_its_snapshot(
    app: Flask, client, auth, postgres, monkeypatch, redis_server: RedisServer
) -> None:
    migrate(client, auth("alice"), {"task-store": TASKS})
    read_from_database = user_records._from_database
    raced: list[bool] = []

    def slow_read(user_id: str, kind: str, limit: int | None = None) -> list[dict[str, Any]]:
        snapshot = read_from_database(user_id, kind, limit)
        if kind == "tasks" and not raced:
            raced.append(True)
            # Another worker commits and writes its snapshot through while this one still holds the old rows.
            commit_change(postgres, user_id, "UPDATE tasks SET title = 'Newer' WHERE title = 'One'")
            records_changed(user_id)
        return snapshot

    monkeypatch.setattr(user_records, "_from_database", slow_read)
    with app.app_context():
        records_changed("alice")
    assert raced
    assert [task["title"] for task in cached(redis_server.url, "alice", "tasks")] == ["Newer", "Two", "Three"]


def test_a_reader_cannot_put_back_what_a_writer_just_replaced(
    app: Flask, client, auth, postgres, monkeypatch, redis_server: RedisServer
) -> None:
    migrate(client, auth("alice"), {"task-store": TASKS})
    redis.Redis.from_url(redis_server.url).hdel(user_cache_key("alice"), "tasks")
    read_from_database = user_records._from_database

    def slow_read(user_id: str, kind: str, limit: int | None = None) -> list[dict[str, Any]]:
        snapshot = read_from_database(user_id, kind, limit)
        monkeypatch.setattr(user_records, "_from_database", read_from_database)
        commit_change(postgres, user_id, "UPDATE tasks SET title = 'Newer' WHERE title = 'One'")
        records_changed(user_id)
        return snapshot

    monkeypatch.setattr(user_records, "_from_database", slow_read)
    assert titles(client, auth("alice")) == ["One", "Two", "Three"]  # read before the commit
    assert [task["title"] for task in cached(redis_server.url, "alice", "tasks")] == ["Newer", "Two", "Three"]
    assert titles(client, auth("alice")) == ["Newer", "Two", "Three"]


def test_a_rollback_writes_the_rolled_back_snapshot_through(client, auth, redis_server: RedisServer) -> None:
    headers = auth("alice")
    sid, _, _ = migrate(client, headers, {"task-store": TASKS, "environments": ENVIRONMENTS})
    assert len(cached(redis_server.url, "alice", "tasks")) == 3
    assert client.post(f"{API}/sessions/{sid}/rollback", headers=headers).status_code == 200
    assert cached(redis_server.url, "alice", "tasks") == []
    assert cached(redis_server.url, "alice", "environments") == []
    assert titles(client, headers) == []


def test_fills_never_extend_an_entrys_lifetime(app: Flask, client, auth, redis_server: RedisServer) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS})
    store = redis.Redis.from_url(redis_server.url)
    key = user_cache_key("alice")
    assert 0 < store.ttl(key) <= app.config["CACHE_TTL_SECONDS"]
    store.expire(key, 100)
    store.hdel(key, "environments")
    client.get("/api/environments", headers=headers)
    assert store.hget(key, "environments") == b"[]"
    assert 0 < store.ttl(key) <= 100


def test_a_kind_past_the_record_limit_is_not_cached(make_app, auth, redis_server: RedisServer) -> None:
    client = make_app(redis_server.url, CACHE_MAX_RECORDS=2).test_client()
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS, "environments": ENVIRONMENTS})
    assert cached(redis_server.url, "alice", "tasks") is None
    assert len(cached(redis_server.url, "alice", "environments")) == 1
    assert titles(client, headers) == ["One", "Two", "Three"]
    assert cached(redis_server.url, "alice", "tasks") is None


def test_without_redis_everything_works_from_the_database(make_app, auth) -> None:
    client = make_app(None).test_client()
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS, "environments": ENVIRONMENTS})
    assert titles(client, headers) == ["One", "Two", "Three"]


def test_an_app_started_while_redis_is_down_works_from_the_database(make_app, auth, caplog) -> None:
    client = make_app(f"redis://127.0.0.1:{free_port()}/0").test_client()
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS, "environments": ENVIRONMENTS})
    assert titles(client, headers) == ["One", "Two", "Three"]
    assert len(warnings_of(caplog)) == 1


def test_redis_stopped_mid_migration(make_app, auth, postgres, own_redis: RedisServer, caplog) -> None:
    client = make_app(own_redis.url, CACHE_RETRY_SECONDS=0).test_client()
    headers = auth("alice")
    sid = open_session(client, headers)
    assert put(client, headers, sid, 0, batch_body("task-store", TASKS[:2])).status_code == 200
    assert titles(client, headers) == ["One", "Two"]
    assert warnings_of(caplog) == []

    own_redis.stop()
    assert put(client, headers, sid, 1, batch_body("task-store", TASKS[2:], offset=2)).status_code == 200
    assert put(client, headers, sid, 2, batch_body("environments", ENVIRONMENTS)).status_code == 200
    verdict = complete(client, headers, sid, {"task-store": TASKS, "environments": ENVIRONMENTS})
    assert verdict.status_code == 200, verdict.json
    assert verdict.json["deletable_keys"] == ["environments", "task-store"]
    assert titles(client, headers) == ["One", "Two", "Three"]
    assert [env["name"] for env in client.get("/api/environments", headers=headers).json["environments"]] == [
        "Production"
    ]
    [warning] = warnings_of(caplog)
    assert "Redis is unreachable" in warning.getMessage()
    for data in (TOKEN, "One", "Production", own_redis.url):
        assert data not in warning.getMessage()

    own_redis.start()  # the same port, empty
    assert titles(client, headers) == ["One", "Two", "Three"]
    assert len(cached(own_redis.url, "alice", "tasks")) == 3  # the cache is used again
    execute(postgres, "UPDATE tasks SET title = 'Edited behind its back' WHERE title = 'One'")
    assert titles(client, headers) == ["One", "Two", "Three"]  # served from it
    assert len(warnings_of(caplog)) == 1


def test_a_bump_that_never_reached_redis_is_replayed_before_it_is_read_again(
    make_app, own_redis: RedisServer, caplog
) -> None:
    app = make_app(own_redis.url, CACHE_RETRY_SECONDS=0)
    key = "lsmigrate:test:bumped"
    admin = redis.Redis.from_url(own_redis.url)
    with app.app_context():
        version = cache.bump(key)
        assert version is not None and cache.write(key, version, {"state": b"old"})

        # Redis keeps its data but refuses the app (as after a credentials change): the bump cannot reach it.
        admin.config_set("requirepass", "rotated")
        admin.client_kill_filter(_type="normal", skipme=True)
        assert cache.bump(key) is None
        assert cache.read(key, "state") is None
        assert admin.hget(key, "state") == b"old"

        admin.config_set("requirepass", "")
        entry = cache.read(key, "state")
        assert entry is not None and entry.value is None  # not the value Redis still held
        assert int(entry.version) > int(version)
    assert len(warnings_of(caplog)) == 1


def redis_values(url: str) -> list[bytes]:
    """Every key and every value Redis holds, whatever its type (SCAN, then a read by type)."""
    store = redis.Redis.from_url(url)
    found: list[bytes] = []
    for key in store.scan_iter(count=1000):
        found.append(key)
        kind = store.type(key)
        if kind == b"string":
            found.append(store.get(key) or b"")
        elif kind == b"hash":
            for field, value in store.hgetall(key).items():
                found += [field, value]
        else:
            found.append(store.dump(key) or b"")
    return found


def test_no_secret_reaches_redis(client, auth, postgres, redis_server: RedisServer) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS, "environments": ENVIRONMENTS})
    [environment] = client.get("/api/environments", headers=headers).json["environments"]
    assert environment["has_github_token"] is True
    assert environment["github_token_hint"] == "…6789"
    with psycopg.connect(postgres.conninfo) as connection:
        [(ciphertext,)] = connection.execute("SELECT github_token_encrypted FROM environments").fetchall()
    bearer = headers["Authorization"].split()[1]
    values = redis_values(redis_server.url)
    assert any(b"Production" in value for value in values)  # the search does see the cached records
    for secret in (TOKEN, ciphertext, bearer, "github_token_encrypted"):
        assert not [value for value in values if secret.encode() in value], secret
