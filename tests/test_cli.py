"""The operator commands (flask --app lsmigrate.server lsmigrate ...) and the schema's migrations."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from flask import Flask

from lsmigrate.server import create_app
from lsmigrate.server.api.auth import user_from_token
from lsmigrate.server.db import db
from tests.migration_helpers import API, batch_body, db_rows, migrate, open_session, put

TASKS = [{"id": "t1", "title": "One", "updatedAt": "2024-01-01T00:00:00.000Z"}, {"id": "t2", "title": "Two"}]


def test_token_prints_a_bearer_token_for_the_user(app: Flask, runner) -> None:
    result = runner.invoke(args=["lsmigrate", "token", "alice"])
    assert result.exit_code == 0
    with app.app_context():
        assert user_from_token(result.output.strip()) == "alice"


def test_sessions_lists_every_session_with_its_outcomes(client, auth, runner) -> None:
    first, _, _ = migrate(client, auth("alice"), {"task-store": TASKS + ["junk"]}, "one")
    second = open_session(client, auth("bob"), "two", dry_run=True)
    result = runner.invoke(args=["lsmigrate", "sessions"])
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert header.split() == ["ID", "USER", "STATUS", "DRY", "RUN", "CREATED", "(UTC)", "RECORDS"]
    assert lines[0].split()[:4] == [second, "bob", "open", "yes"]
    assert lines[1].split()[:4] == [first, "alice", "verified", "no"]
    assert lines[1].endswith("inserted 2, quarantined 1")
    only_bob = runner.invoke(args=["lsmigrate", "sessions", "--user", "bob"]).output.splitlines()
    assert len(only_bob) == 2


def test_show_gives_the_state_per_key_counts_and_open_conflicts(app, client, auth, runner, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    headers = auth("alice")
    migrate(client, headers, {"task-store": TASKS}, "seed")
    edited = [TASKS[0] | {"title": "One, edited"}, TASKS[1]]
    sid, answers, _ = migrate(client, headers, {"task-store": edited}, "second")
    conflict_id = answers[0]["results"][0]["conflict_id"]
    result = runner.invoke(args=["lsmigrate", "show", sid])
    assert result.exit_code == 0, result.output
    assert f"session:        {sid}" in result.output
    assert "status:         verified" in result.output
    assert "task-store  conflict 1, unchanged 1" in result.output
    assert "open conflicts: 1" in result.output
    assert conflict_id in result.output


def test_rollback_prints_what_it_deleted_restored_and_skipped(client, auth, runner, postgres) -> None:
    headers = auth("alice")
    first, _, _ = migrate(client, headers, {"task-store": TASKS}, "first")
    newer = TASKS[0] | {"title": "One, edited", "updatedAt": "2024-02-01T00:00:00.000Z"}
    second, _, _ = migrate(client, headers, {"task-store": [newer, TASKS[1]]}, "second")
    result = runner.invoke(args=["lsmigrate", "rollback", first])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"session {first} rolled back"
    assert [line.split(": ")[-1] for line in lines if line.startswith("skipped")] == [
        "changed_since",
        "used_by_another_session",
    ]
    result = runner.invoke(args=["lsmigrate", "rollback", second])
    # The first session is rolled back too: rolling the second back finishes taking both rows back.
    assert "deleted: 2 tasks" in result.output
    assert db_rows(postgres, "SELECT title FROM tasks ORDER BY title") == []


@pytest.mark.parametrize("command", ["show", "rollback"])
@pytest.mark.parametrize("sid", [str(uuid.uuid4()), "nope"])
def test_an_unknown_session_is_an_error(runner, command, sid) -> None:
    result = runner.invoke(args=["lsmigrate", command, sid])
    assert result.exit_code == 1
    assert f"no migration session {sid}" in result.output


def test_the_cli_rollback_is_the_api_rollback(client, auth, runner) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    put(client, headers, sid, 0, batch_body("task-store", TASKS))
    assert runner.invoke(args=["lsmigrate", "rollback", sid]).output.splitlines()[1] == "deleted: 2 tasks"
    assert client.post(f"{API}/sessions/{sid}/rollback", headers=headers).json["deleted"] == {"tasks": 2}


def test_the_migrations_match_the_models_on_postgresql(runner) -> None:
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output


def test_the_migrations_match_the_models_on_sqlite_and_go_down_and_up(tmp_path: Path) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "SECRET_KEY": "k",
            "DEMO": True,
        }
    )
    runner = app.test_cli_runner()
    try:
        for args in (
            ["db", "upgrade"],
            ["db", "check"],
            ["db", "downgrade", "0002"],
            ["db", "upgrade"],
            ["db", "check"],
        ):
            result = runner.invoke(args=args)
            assert result.exit_code == 0, (args, result.output)
    finally:
        with app.app_context():
            db.engine.dispose()
