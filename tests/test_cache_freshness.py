"""The per-user cache is never stale: its snapshot is served only at the data version PostgreSQL holds.

Whatever Redis lost or was given back (an invalidation that never reached it, an old snapshot restored,
a flush), and whichever worker reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from lsmigrate.demo import records as user_records
from lsmigrate.demo.models import Task
from lsmigrate.demo.records import user_cache_key
from lsmigrate.server import advance_data_version, data_version
from lsmigrate.server.db import db
from tests.fixtures_services import RedisServer
from tests.migration_helpers import API, migrate, open_session
from tests.test_cache import ENVIRONMENTS, TASKS, cached, execute, titles


def names(client: FlaskClient, headers: dict[str, str]) -> list[str]:
    response = client.get("/api/environments", headers=headers)
    assert response.status_code == 200, response.json
    return [environment["name"] for environment in response.json["environments"]]


def version_of(app: Flask, user_id: str) -> int:
    with app.app_context():
        return data_version(user_id)


@contextmanager
def redis_failing(server: RedisServer, how: str) -> Iterator[None]:
    """Redis keeps its data but does not serve the app meanwhile: it refuses it, or hangs."""
    admin = redis.Redis.from_url(server.url)
    if how == "refusing":  # as after a credentials change
        admin.config_set("requirepass", "rotated")
        admin.client_kill_filter(_type="normal", skipme=True)
    else:
        server.pause()
    try:
        yield
    finally:
        if how == "refusing":
            admin.config_set("requirepass", "")
        else:
            server.resume()


@pytest.fixture
def lost_write_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing reaches Redis after a commit (the worker died right after it, or Redis was down)."""
    monkeypatch.setattr(user_records, "records_changed", lambda user_id, *, write_through=True: None)


@pytest.mark.parametrize("how", ["refusing", "hanging"])
def test_a_change_redis_never_heard_of_is_read_fresh_by_every_worker(
    make_app, auth, own_redis: RedisServer, how: str
) -> None:
    # Refused, the writer tries Redis at every call; hanging, it waits for one timeout and then leaves it alone.
    writer = make_app(own_redis.url, CACHE_RETRY_SECONDS=0 if how == "refusing" else 5).test_client()
    other = make_app(own_redis.url).test_client()  # another worker, which never sees the failure
    headers = auth("alice")
    migrate(writer, headers, {"task-store": TASKS[:2]})
    assert titles(other, headers) == ["One", "Two"]
    assert len(cached(own_redis.url, "alice", "tasks")) == 2  # served from the written-through snapshot

    with redis_failing(own_redis, how):
        migrate(writer, headers, {"task-store": TASKS}, "client-2")
    assert len(cached(own_redis.url, "alice", "tasks")) == 2  # Redis still holds the old snapshot...
    assert titles(other, headers) == ["One", "Two", "Three"]  # ...which no worker serves
    assert titles(writer, headers) == ["One", "Two", "Three"]
    assert len(cached(own_redis.url, "alice", "tasks")) == 3  # rebuilt


@pytest.mark.parametrize("how", ["RESTORE of its DUMP", "HSET of its fields", "FLUSHALL"])
def test_a_redis_given_back_an_old_snapshot_or_flushed_never_serves_old_records(
    client, auth, redis_server: RedisServer, how: str
) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS[:2], "environments": ENVIRONMENTS})
    store = redis.Redis.from_url(redis_server.url)
    key = user_cache_key("alice")
    old_dump, old_fields = store.dump(key), store.hgetall(key)
    assert titles(client, headers) == ["One", "Two"]  # served from that snapshot
    renamed = [dict(ENVIRONMENTS[0], name="Staging", updatedAt="2030-01-01T00:00:00.000Z")]
    migrate(client, headers, {"task-store": TASKS, "environments": renamed}, "client-2")
    assert len(cached(redis_server.url, "alice", "tasks")) == 3  # written through

    if how == "RESTORE of its DUMP":
        store.restore(key, 0, old_dump, replace=True)
    elif how == "HSET of its fields":
        store.delete(key)
        store.hset(key, mapping=old_fields)
    else:
        store.flushall()
    assert store.hgetall(key) == ({} if how == "FLUSHALL" else old_fields)
    assert titles(client, headers) == ["One", "Two", "Three"]
    assert names(client, headers) == ["Staging"]
    assert len(cached(redis_server.url, "alice", "tasks")) == 3
    assert 0 < store.ttl(key) <= client.application.config["CACHE_TTL_SECONDS"]  # the rebuilt entry expires


def test_a_host_edit_in_its_own_transaction_is_read_at_once(app: Flask, client, auth) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS})
    assert titles(client, headers) == ["One", "Two", "Three"]  # cached
    with app.app_context():
        advance_data_version("alice")
        db.session.execute(update(Task).where(Task.user_id == "alice", Task.title == "One").values(title="Host's"))
        db.session.commit()
    assert titles(client, headers) == ["Host's", "Two", "Three"]
    assert cached(client.application.config["REDIS_URL"], "alice", "tasks")[0]["title"] == "Host's"


def test_a_host_transaction_rolled_back_leaves_the_version_and_the_snapshot(app: Flask, client, auth, postgres) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS})
    assert titles(client, headers) == ["One", "Two", "Three"]
    with app.app_context():
        before = data_version("alice")
        advance_data_version("alice")
        assert data_version("alice") > before
        db.session.rollback()
        assert data_version("alice") == before
    execute(postgres, "UPDATE tasks SET title = 'Behind its back' WHERE title = 'One'")
    assert titles(client, headers) == ["One", "Two", "Three"]  # still the snapshot: the version did not move


def test_the_data_version_grows_and_rolls_back_with_its_transaction(any_app: Flask) -> None:
    user_id = str(uuid.uuid4())
    with any_app.app_context():
        assert data_version(user_id) == 0
        advance_data_version(user_id)
        db.session.commit()
        first = data_version(user_id)
        advance_data_version(user_id)
        assert data_version(user_id) > first
        db.session.rollback()
        assert data_version(user_id) == first
        advance_data_version(user_id)
        advance_data_version(user_id)
        db.session.commit()
        assert data_version(user_id) >= first + 2


def test_a_rollback_advances_the_version(app: Flask, client, auth, redis_server, lost_write_through) -> None:
    headers = auth("alice")
    sid = migrate(client, headers, {"task-store": TASKS})[0]
    assert titles(client, headers) == ["One", "Two", "Three"]
    before = version_of(app, "alice")
    assert client.post(f"{API}/sessions/{sid}/rollback", headers=headers).json["deleted"] == {"tasks": 3}
    assert version_of(app, "alice") > before
    assert len(cached(redis_server.url, "alice", "tasks")) == 3  # nothing told Redis
    assert titles(client, headers) == []


def test_a_conflicts_resolution_advances_the_version(
    app: Flask, client, auth, monkeypatch, redis_server, lost_write_through
) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"environments": "ask"})
    headers = auth("alice")
    migrate(client, headers, {"environments": ENVIRONMENTS}, "seed")
    newer = [dict(ENVIRONMENTS[0], name="Renamed", updatedAt="2030-01-01T00:00:00.000Z")]
    sid, answers, _ = migrate(client, headers, {"environments": newer}, "second")
    conflict = answers[0]["results"][0]["conflict_id"]
    assert names(client, headers) == ["Production"]
    before = version_of(app, "alice")
    resolved = client.post(f"{API}/sessions/{sid}/conflicts/{conflict}", json={"keep": "local"}, headers=headers)
    assert resolved.json["outcome"] == "updated"
    assert version_of(app, "alice") > before
    assert cached(redis_server.url, "alice", "environments")[0]["name"] == "Production"  # nothing told Redis
    assert names(client, headers) == ["Renamed"]


def test_opening_a_session_leaves_the_version(app: Flask, client, auth) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS})
    before = version_of(app, "alice")
    open_session(client, headers, "client-2")
    assert version_of(app, "alice") == before
