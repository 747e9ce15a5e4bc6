"""The operator commands (flask --app lsmigrate.server lsmigrate ...) and the schema's migrations."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
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


def test_stats_prints_the_figures_and_json_the_same_figures(app, client, auth, runner) -> None:
    migrate(client, auth("alice"), {"task-store": TASKS + ["junk"]}, "one")
    open_session(client, auth("bob"), "two", dry_run=True)
    result = runner.invoke(args=["lsmigrate", "stats"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["sessions", "by", "state", "(dry", "runs", "apart:", "1)"] in lines
    assert ["verified", "1"] in lines and ["inserted", "2"] in lines and ["quarantined", "1"] in lines
    assert ["not_an_object", "1"] in lines
    slowest = lines[lines.index(["SESSION", "USER", "STATUS", "RECORDS", "SECONDS"]) + 1]
    assert slowest[1:4] == ["alice", "verified", "3"]
    figures = json.loads(runner.invoke(args=["lsmigrate", "stats", "--json"]).output)
    assert figures["records"] == {"inserted": 2, "quarantined": 1}
    assert figures["sessions"] == {"verified": 1} and figures["dry_runs"] == 1
    assert runner.invoke(args=["lsmigrate", "stats", "--limit", "0"]).exit_code == 2


def test_show_prints_the_audit_trail_with_who_rolled_back(client, auth, runner) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    put(client, headers, sid, 0, batch_body("task-store", TASKS))
    put(client, headers, sid, 1, batch_body("task-store", ["junk"], offset=2))
    assert runner.invoke(args=["lsmigrate", "rollback", sid]).exit_code == 0
    result = runner.invoke(args=["lsmigrate", "show", sid])
    assert result.exit_code == 0, result.output
    assert "status:         rolled_back" in result.output  # what it printed before the trail stays
    trail = result.output.split("audit trail: 4 events\n")[1].splitlines()
    assert trail[0].split() == ["AT", "(UTC)", "ACTOR", "ACTION", "DETAILS"]
    assert [line.split()[1:3] for line in trail[1:]] == [
        ["user:alice", "session_opened"],
        ["user:alice", "batch_received"],
        ["user:alice", "batch_received"],
        ["cli", "session_rolled_back"],
    ]
    assert trail[2].endswith("batch 0 of task-store (tasks): inserted 2")
    assert trail[3].endswith("batch 1 of task-store (tasks): quarantined 1")
    assert trail[4].endswith("deleted tasks 2; skipped 0; conflicts closed 0")


def _age(postgres, sid: str, days: int) -> None:
    with psycopg.connect(postgres.conninfo) as connection:
        connection.execute(
            "UPDATE migration_sessions SET completed_at = completed_at - make_interval(days => %s) WHERE id = %s",
            (days, sid),
        )


def test_prune_says_what_it_cleared_and_what_it_kept(client, auth, runner, postgres) -> None:
    old, _, _ = migrate(client, auth("alice"), {"task-store": TASKS + ["junk"]}, "old")
    migrate(client, auth("bob"), {"task-store": TASKS}, "new")
    _age(postgres, old, 91)
    dry = runner.invoke(args=["lsmigrate", "prune", "--older-than", "90d", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("would prune: 1 sessions verified or rolled back before ")
    assert "dry run: nothing was changed" in dry.output
    result = runner.invoke(args=["lsmigrate", "prune", "--older-than", "90d", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("pruned: 1 sessions verified or rolled back before ")
    assert lines[2].split()[-1] == "1" and lines[3].split()[-1] == "0" and lines[4].split()[-1] == "1"
    assert lines[5].startswith("kept: 1 sessions newer than ") and lines[5].endswith("their rollback still works")
    assert "pruned sessions can no longer be rolled back" in lines
    assert lines[-1] == "transactions: 3 (at most 1 rows each)"
    refused = runner.invoke(args=["lsmigrate", "rollback", old])
    assert refused.exit_code == 1 and "(session_pruned)" in refused.output


@pytest.mark.parametrize("age", ["90", "0d", "-1d", "1w", "1.5d", " 90d", "90D", "d", "", "090d", "99999999999d"])
def test_prune_takes_only_a_positive_number_of_days_hours_or_minutes(runner, age) -> None:
    result = runner.invoke(args=["lsmigrate", "prune", "--older-than", age])
    assert result.exit_code == 2
    assert "expected <n>d, <n>h or <n>m" in result.output


@pytest.mark.parametrize("age", ["90d", "36h", "30m"])
def test_prune_reads_days_hours_and_minutes(runner, age) -> None:
    result = runner.invoke(args=["lsmigrate", "prune", "--older-than", age, "--dry-run"])
    assert result.exit_code == 0, result.output
