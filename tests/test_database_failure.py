"""A database that drops a connection mid-request, is not there at all, or races another writer.

The promise: 503 with Retry-After and nothing of the request written; sending
it again gives the result it would have had.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError

from lsmigrate.server.records.identity import keyed_relocated_id
from tests.fixtures_services import PostgresServer
from tests.migration_helpers import (
    ALL_TABLES,
    API,
    batch_body,
    before_statement,
    colliding_ledger_row,
    db_rows,
    dump,
    migrate,
    open_session,
    put,
    terminate_backend,
    unreachable_app,
)

SEEDED = {"id": str(uuid.uuid4()), "title": "Seeded", "updatedAt": "2024-01-01T00:00:00.000Z"}
BATCH = [
    SEEDED | {"title": "Seeded, edited", "updatedAt": "2024-02-01T00:00:00.000Z"},  # updated
    {"id": "task-new", "title": "New"},  # inserted
    {"title": {"not": "text"}},  # quarantined
    {"id": "task-new", "title": "New, again", "updatedAt": "2024-03-01T00:00:00.000Z"},  # duplicate, newer
]


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.json
    assert response.headers["Retry-After"] == "2"
    assert response.json["error"]["code"] == "database_unavailable"


def test_a_connection_killed_before_the_ledger_insert_leaves_nothing_and_the_retry_succeeds(
    app, client, auth, postgres
) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": [SEEDED]}, "seed")
    dry_sid = open_session(client, headers, "preview", dry_run=True)
    expected = put(client, headers, dry_sid, 0, batch_body("task-store", BATCH)).json
    sid = open_session(client, headers, "real")
    before = dump(postgres, ALL_TABLES)
    with before_statement(app, "COPY migration_ledger", terminate_backend(postgres)):
        failed = put(client, headers, sid, 0, batch_body("task-store", BATCH))
    assert_unavailable(failed)
    assert dump(postgres, ALL_TABLES) == before  # the update and the inserts before the kill went with it
    retry = put(client, headers, sid, 0, batch_body("task-store", BATCH))
    assert retry.status_code == 200
    assert [r["outcome"] for r in retry.json["results"]] == ["updated", "superseded", "quarantined", "inserted"]
    assert retry.json["results"] == expected["results"]
    assert put(client, headers, sid, 0, batch_body("task-store", BATCH)).json == retry.json


def test_a_connection_killed_in_a_rollback_changes_nothing_and_the_retry_rolls_back(
    app, client, auth, postgres
) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": [SEEDED]}, "seed")
    before_session = dump(postgres)
    sid, _, _ = migrate(client, headers, {"task-store": BATCH}, "real")
    after_session = dump(postgres, ALL_TABLES)
    with before_statement(app, "UPDATE migration_sessions", terminate_backend(postgres)):
        assert_unavailable(client.post(f"{API}/sessions/{sid}/rollback", headers=headers))
    assert dump(postgres, ALL_TABLES) == after_session
    assert client.post(f"{API}/sessions/{sid}/rollback", headers=headers).status_code == 200
    assert dump(postgres) == before_session


def test_an_unreachable_database_is_503_on_every_call() -> None:
    with unreachable_app() as (client, headers):
        sid = str(uuid.uuid4())
        calls = [
            client.post(f"{API}/sessions", json={"client_session_id": "c"}, headers=headers),
            client.get(f"{API}/sessions/{sid}", headers=headers),
            client.put(f"{API}/sessions/{sid}/batches/0", json=batch_body("task-store", BATCH), headers=headers),
            client.post(f"{API}/sessions/{sid}/complete", json={"manifest": {}}, headers=headers),
            client.get(f"{API}/sessions/{sid}/conflicts", headers=headers),
            client.get(f"{API}/sessions/{sid}/quarantine", headers=headers),
            client.post(f"{API}/sessions/{sid}/rollback", headers=headers),
        ]
        for response in calls:
            assert_unavailable(response)
        assert_unavailable(client.get("/healthz"))  # with Retry-After, like every 503


def insert_task(postgres: PostgresServer, row_id: str, user_id: str) -> None:
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO tasks (id, user_id, title, status, priority, is_archived, has_changes, metadata,"
            " source_digest, created_at, updated_at) VALUES (%s, %s, 'theirs', 'pending', 'medium', false, false,"
            " '{}', %s, now(), now())",
            (row_id, user_id, "0" * 64),
        )


def test_another_users_row_appearing_mid_batch_is_decided_afresh(app, client, auth, postgres) -> None:
    headers = auth("alice")
    task_id = str(uuid.uuid4())
    [(salt,)] = db_rows(postgres, "SELECT value FROM lsmigrate_salts WHERE name = 'relocation'")
    relocated = str(keyed_relocated_id(bytes.fromhex(salt), "alice", "tasks", uuid.UUID(task_id)))
    # Mallory inserts the batch's id just before the batch's insert; the retry relocates the record, and she
    # (with the deployment's salt: an insider) takes the relocated id too: the third attempt finds both hers
    # and quarantines the record.
    taken = iter([task_id, relocated])
    sid = open_session(client, headers)
    with before_statement(app, "COPY tasks", lambda cursor: insert_task(postgres, next(taken), "mallory"), times=2):
        response = put(client, headers, sid, 0, batch_body("task-store", [{"id": task_id, "title": "Mine"}]))
    assert response.status_code == 200
    [result] = response.json["results"]
    assert result["outcome"] == "quarantined"
    assert [reason["code"] for reason in result["reasons"]] == ["foreign_id"]
    assert db_rows(postgres, "SELECT user_id, title FROM tasks ORDER BY id") == [("mallory", "theirs")] * 2
    assert db_rows(postgres, "SELECT raw->>'title' FROM quarantine") == [("Mine",)]


def test_a_batch_that_keeps_colliding_is_409_concurrent_write_and_writes_nothing(app, client, auth, postgres) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    before = dump(postgres, ALL_TABLES)
    with colliding_ledger_row(app, postgres, sid):
        response = put(client, headers, sid, 0, batch_body("task-store", BATCH))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "concurrent_write"
    assert dump(postgres, ALL_TABLES) == before
    assert put(client, headers, sid, 0, batch_body("task-store", BATCH)).status_code == 200


@pytest.mark.parametrize("keep", ["local", "server"])
def test_a_connection_killed_while_resolving_a_conflict_changes_nothing(
    app, client, auth, postgres, monkeypatch, keep
) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    headers = auth("alice")
    migrate(client, headers, {"task-store": [SEEDED]}, "seed")
    sid, answers, _ = migrate(client, headers, {"task-store": BATCH[:1]}, "second")
    conflict_id = answers[0]["results"][0]["conflict_id"]
    before = dump(postgres, ALL_TABLES)
    url = f"{API}/sessions/{sid}/conflicts/{conflict_id}"
    with before_statement(app, "UPDATE migration_conflicts", terminate_backend(postgres)):
        assert_unavailable(client.post(url, json={"keep": keep}, headers=headers))
    assert dump(postgres, ALL_TABLES) == before
    assert client.post(url, json={"keep": keep}, headers=headers).json["outcome"] in ("updated", "kept_server")


@pytest.fixture
def forbidden_title(postgres: PostgresServer) -> Iterator[None]:
    """A constraint the ingest does not know of: tasks titled 'Forbidden' are refused (gone after the test)."""
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute("ALTER TABLE tasks ADD CONSTRAINT no_forbidden_title CHECK (title <> 'Forbidden')")
    try:
        yield
    finally:
        with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
            connection.execute("ALTER TABLE tasks DROP CONSTRAINT no_forbidden_title")


@pytest.mark.usefixtures("forbidden_title")
def test_an_integrity_error_that_is_no_collision_is_not_retried_as_one(app, client, auth, postgres) -> None:
    # A server error (the plan built a row the table refuses), not a race to retry into a 409.
    headers = auth("alice")
    sid = open_session(client, headers)
    before = dump(postgres, ALL_TABLES)
    statements: list[str] = []
    with before_statement(app, "COPY tasks", lambda cursor: statements.append("COPY tasks"), times=10):
        with pytest.raises(IntegrityError) as raised:
            put(client, headers, sid, 0, batch_body("task-store", [{"id": "t-1", "title": "Forbidden"}]))
    assert isinstance(raised.value.orig, psycopg.errors.CheckViolation)
    assert statements == ["COPY tasks"]  # tried once
    assert dump(postgres, ALL_TABLES) == before
