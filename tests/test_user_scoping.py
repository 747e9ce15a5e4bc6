"""Past one database (issue 15, design §14): every lsmigrate table carries the user id, and every statement the
protocol runs on one of them names it, so the tables can be distributed by user (Citus) or partitioned."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from flask import Flask
from redis.crc import key_slot

from lsmigrate.server import metadata
from lsmigrate.server.cache import user_hash_tag
from tests.migration_helpers import API, TOKEN, batch_body, complete, migrate, open_session, put, recorded_statements

#: Tables with no user's data in them: reference tables, the same on every node.
REFERENCE_TABLES = frozenset({"lsmigrate_salts"})
_TABLE_NAME = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|COPY)\s+\"?([a-z_]+)\"?", re.IGNORECASE)


def test_every_lsmigrate_table_carries_the_user_id() -> None:
    missing = [
        table.name
        for table in metadata.sorted_tables
        if table.name not in REFERENCE_TABLES and "user_id" not in table.columns
    ]
    assert missing == []


def _unscoped(statements: list[str]) -> list[str]:
    """The statements on a user-data table that do not name user_id."""
    user_tables = {table.name for table in metadata.sorted_tables} - REFERENCE_TABLES
    return [
        statement
        for statement in statements
        if {name.lower() for name in _TABLE_NAME.findall(statement)} & user_tables and "user_id" not in statement
    ]


@pytest.fixture
def ask(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("tasks", "environments", "form_drafts", "user_preferences")
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", dict.fromkeys(names, "ask"))


def test_every_statement_of_the_protocol_names_the_user(app: Flask, client: Any, auth: Any, ask: None) -> None:
    headers = auth("alice")
    server = {"id": "env-1", "name": "Prod", "githubToken": TOKEN, "updatedAt": "2024-05-01T00:00:00.000Z"}
    migrate(client, headers, {"environments": [server]}, "seed")
    local = server | {"description": "edited", "updatedAt": "2024-06-01T00:00:00.000Z"}
    tasks = [{"id": "t1", "title": "One"}, {"id": "t2", "title": 7}]  # the second is quarantined
    with recorded_statements(app) as statements:
        sid = open_session(client, headers, "second")
        assert put(client, headers, sid, 0, batch_body("environments", [local])).status_code == 200
        assert put(client, headers, sid, 0, batch_body("environments", [local])).status_code == 200  # a replay
        assert put(client, headers, sid, 1, batch_body("task-store", tasks)).status_code == 200
        assert client.get(f"{API}/sessions/{sid}", headers=headers).status_code == 200
        [conflict] = client.get(f"{API}/sessions/{sid}/conflicts", headers=headers).json["conflicts"]
        assert client.get(f"{API}/sessions/{sid}/quarantine", headers=headers).status_code == 200
        resolved = client.post(
            f"{API}/sessions/{sid}/conflicts/{conflict['id']}", json={"keep": "local"}, headers=headers
        )
        assert resolved.status_code == 200, resolved.json
        assert complete(client, headers, sid, {"environments": [local], "task-store": tasks}).status_code == 200
        assert client.get(f"{API}/keys/task-store", headers=headers).status_code == 200
        assert client.post(f"{API}/sessions/{sid}/rollback", headers=headers).status_code == 200
    assert len(statements) > 30
    assert _unscoped(statements) == []


def test_one_users_redis_keys_share_a_cluster_slot(make_app: Any, auth: Any, redis_server: Any) -> None:
    """The revocation entry, the records snapshot and the rate limiter's counters of a user: one hash tag, so
    one Redis Cluster slot; another user's are elsewhere, and no key holds a user id."""
    client = make_app(redis_server.url).test_client()
    for user in ("alice", "{bob}"):
        assert client.get("/api/tasks", headers=auth(user)).status_code == 200
    keys = [key.decode() for key in redis.Redis.from_url(redis_server.url).scan_iter()]
    for user in ("alice", "{bob}"):
        tag = user_hash_tag(user)
        mine = [key for key in keys if tag in key]
        assert {"revocations", "records"} <= {key.rsplit(":", 1)[-1] for key in mine}, keys
        assert any("LIMITER/" in key for key in mine), [k for k in keys if "LIMIT" in k]
        assert {key_slot(key.encode()) for key in mine} == {key_slot(tag.encode())}
    assert not [key for key in keys if "alice" in key or "bob" in key]
