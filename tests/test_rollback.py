"""Rolling a session back restores the exact table contents from before it, and only its own rows."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask

from tests.migration_helpers import (
    ALL_TABLES,
    API,
    TOKEN,
    batch_body,
    complete,
    db_rows,
    dump,
    migrate,
    open_session,
    put,
)

A, B, E = (str(uuid.uuid4()) for _ in range(3))
SEED_TASKS = [
    {"id": A, "title": "A", "updatedAt": "2024-01-01T00:00:00.000Z"},
    {"id": B, "title": "B", "updatedAt": "2024-01-01T00:00:00.000Z"},
    {"id": E, "title": "E", "updatedAt": "2024-01-01T00:00:00.000Z"},
]
SEED_ENVIRONMENTS = [{"id": "env-1", "name": "Prod", "githubToken": TOKEN, "updatedAt": "2024-01-01T00:00:00.000Z"}]
DRAFT_KEY = "task-form-draft"


@pytest.fixture
def policies(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"environments": "ask", "user_preferences": "keep_local"})


def seed(client: Any, auth: Any) -> None:
    migrate(client, auth("bob"), {"task-store": SEED_TASKS, "environments": SEED_ENVIRONMENTS}, "bob")
    keys = {
        "task-store": SEED_TASKS,
        "environments": SEED_ENVIRONMENTS,
        "user-preferences": [{"theme": "light"}],
    }
    migrate(client, auth("alice"), keys, "seed")


def test_a_rollback_restores_the_exact_tables_from_before_the_session(client, auth, postgres, policies, runner) -> None:
    seed(client, auth)
    headers = auth("alice")
    client.get("/api/tasks", headers=headers)  # cached before the session
    before = dump(postgres)
    sid = open_session(client, headers, "second")
    newer = "2024-02-01T00:00:00.000Z"
    batch0 = [
        SEED_TASKS[0] | {"title": "A, edited", "updatedAt": newer},  # updated
        SEED_TASKS[1],  # unchanged
        {"id": "task-c", "title": "C"},  # inserted
        {"id": "task-d", "title": "D, first", "updatedAt": "2024-01-01T00:00:00.000Z"},  # inserted...
        SEED_TASKS[2] | {"title": "E, edited", "updatedAt": newer},  # updated...
        "not a task",  # quarantined
    ]
    batch1 = [
        {"id": "task-d", "title": "D, second", "updatedAt": newer},  # ...then taken over
        SEED_TASKS[2] | {"title": "E, edited twice", "updatedAt": "2024-03-01T00:00:00.000Z"},  # ...then again
    ]
    environments = [
        SEED_ENVIRONMENTS[0] | {"githubToken": TOKEN + "-2", "updatedAt": newer},  # conflict, resolved local
        {"id": "env-2", "name": "Prod"},  # inserted as "Prod (2)"
    ]
    preferences = [{"theme": "dark"}]  # updated (keep_local)
    draft = [{"title": "half-typed"}]  # inserted
    for seq, (key, records, offset) in enumerate(
        [
            ("task-store", batch0, 0),
            ("task-store", batch1, len(batch0)),
            ("environments", environments, 0),
            ("user-preferences", preferences, 0),
            (DRAFT_KEY, draft, 0),
        ]
    ):
        assert put(client, headers, sid, seq, batch_body(key, records, offset)).status_code == 200
    [conflict] = client.get(f"{API}/sessions/{sid}/conflicts", headers=headers).json["conflicts"]
    client.post(f"{API}/sessions/{sid}/conflicts/{conflict['id']}", json={"keep": "local"}, headers=headers)
    keys = {"task-store": batch0 + batch1, "environments": environments, "user-preferences": preferences}
    verdict = complete(client, headers, sid, keys | {DRAFT_KEY: draft}).json
    assert verdict["counts"]["task-store"] == {
        "inserted": 2,
        "quarantined": 1,
        "superseded": 2,
        "unchanged": 1,
        "updated": 2,
    }
    assert dump(postgres) != before
    assert len(client.get("/api/tasks", headers=headers).json["tasks"]) == 5

    report = client.post(f"{API}/sessions/{sid}/rollback", headers=headers).json
    assert report["deleted"] == {"environments": 1, "form_drafts": 1, "tasks": 2}
    assert report["restored"] == {"environments": 1, "tasks": 2, "user_preferences": 1}
    assert report["skipped"] == []
    assert dump(postgres) == before
    assert sorted(t["title"] for t in client.get("/api/tasks", headers=headers).json["tasks"]) == ["A", "B", "E"]

    everything = dump(postgres, ALL_TABLES)
    assert client.post(f"{API}/sessions/{sid}/rollback", headers=headers).json == report
    assert runner.invoke(args=["lsmigrate", "rollback", sid]).exit_code == 0
    assert dump(postgres, ALL_TABLES) == everything
    closed = put(client, headers, sid, 9, batch_body("task-store", [{"id": "x"}], offset=8))
    assert (closed.status_code, closed.json["error"]["code"]) == (409, "session_closed")
    verify = complete(client, headers, sid, keys)
    assert (verify.status_code, verify.json["error"]["code"]) == (409, "session_closed")
    assert client.get(f"{API}/sessions/{sid}", headers=headers).json["status"] == "rolled_back"


def test_a_row_another_session_changed_or_relies_on_is_skipped(client, auth, postgres) -> None:
    headers = auth("alice")
    x, y = {"id": "x", "title": "X"}, {"id": "y", "title": "Y", "updatedAt": "2024-01-01T00:00:00.000Z"}
    first, _, _ = migrate(client, headers, {"task-store": [x, y]}, "first")
    y2 = y | {"title": "Y, edited", "updatedAt": "2024-02-01T00:00:00.000Z"}
    second, answers, _ = migrate(client, headers, {"task-store": [x, y2]}, "second")
    assert [r["outcome"] for r in answers[0]["results"]] == ["unchanged", "updated"]
    rows = dump(postgres)

    report = client.post(f"{API}/sessions/{first}/rollback", headers=headers).json
    reasons = {skip["index"]: skip["reason"] for skip in report["skipped"]}
    assert reasons == {0: "used_by_another_session", 1: "changed_since"}
    assert (report["deleted"], report["restored"]) == ({}, {})
    assert dump(postgres) == rows


def test_rolling_back_the_later_session_first_lets_the_earlier_one_go(client, auth, postgres) -> None:
    headers = auth("alice")
    x = {"id": "x", "title": "X"}
    first, _, _ = migrate(client, headers, {"task-store": [x]}, "first")
    second, _, _ = migrate(client, headers, {"task-store": [x]}, "second")
    assert client.post(f"{API}/sessions/{second}/rollback", headers=headers).json["deleted"] == {}
    assert client.post(f"{API}/sessions/{first}/rollback", headers=headers).json["deleted"] == {"tasks": 1}
    assert db_rows(postgres, "SELECT count(*) FROM tasks") == [(0,)]


def test_a_rollback_never_touches_another_users_rows_or_sessions(client, auth, postgres) -> None:
    migrate(client, auth("bob"), {"task-store": SEED_TASKS}, "bob")
    bobs = dump(postgres)
    sid, _, _ = migrate(client, auth("alice"), {"task-store": SEED_TASKS}, "alice")
    forbidden = client.post(f"{API}/sessions/{sid}/rollback", headers=auth("bob"))
    assert (forbidden.status_code, forbidden.json["error"]["code"]) == (403, "foreign_session")
    client.post(f"{API}/sessions/{sid}/rollback", headers=auth("alice"))
    assert dump(postgres) == bobs


def test_a_dry_run_rollback_only_closes_it(client, auth, postgres) -> None:
    headers = auth("alice")
    sid, _, _ = migrate(client, headers, {"task-store": SEED_TASKS}, "dry", dry_run=True)
    report = client.post(f"{API}/sessions/{sid}/rollback", headers=headers).json
    assert (report["dry_run"], report["deleted"], report["restored"]) == (True, {}, {})
    assert db_rows(postgres, "SELECT status FROM migration_sessions") == [("rolled_back",)]


def test_a_pre_image_whose_name_was_taken_since_is_skipped_not_an_error(client, auth, postgres) -> None:
    headers = auth("alice")
    migrate(client, headers, {"environments": [{"id": "env-1", "name": "X", "updatedAt": "2024-01-01T00:00:00.000Z"}]})
    renamed = {"id": "env-1", "name": "Y", "updatedAt": "2024-02-01T00:00:00.000Z"}
    first, _, _ = migrate(client, headers, {"environments": [renamed]}, "rename")
    migrate(client, headers, {"environments": [{"id": "env-2", "name": "X"}]}, "take")
    report = client.post(f"{API}/sessions/{first}/rollback", headers=headers).json
    assert [skip["reason"] for skip in report["skipped"]] == ["name_taken_since"]
    assert report["restored"] == {}
    assert db_rows(postgres, "SELECT name FROM environments ORDER BY name") == [("X",), ("Y",)]
