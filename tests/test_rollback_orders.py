"""Rollback across sessions (design §12): any order ends in the rows the standing sessions account for, and
nothing anyone changed since lsmigrate wrote it is ever deleted or overwritten."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from lsmigrate.server.api.auth import issue_token
from lsmigrate.server.db import db
from tests.migration_helpers import API, batch_body, complete, db_rows, dump, migrate, open_session, put

JAN, FEB, MAR, DEC = (f"{day}T00:00:00.000Z" for day in ("2024-01-01", "2024-02-01", "2024-03-01", "2023-12-01"))
A, B, C, D = (str(uuid.uuid4()) for _ in range(4))


def task(task_id: str, title: str, at: str) -> dict[str, Any]:
    return {"id": task_id, "title": title, "updatedAt": at}


#: What each session uploads: later sessions update some rows, find others unchanged, keep the server's of one.
SESSIONS = {
    "s1": [task(A, "A1", JAN), task(B, "B1", JAN), task(C, "C1", JAN)],
    "s2": [task(A, "A2", FEB), task(B, "B1", JAN), task(D, "D2", FEB)],  # updated, unchanged, inserted
    "s3": [task(A, "A3", MAR), task(B, "B0", DEC), task(C, "C3", MAR), task(D, "D3", MAR)],  # b: kept_server
}
#: Each row's writes in order (the session that wrote it), and the sessions relying on each write.
WRITES = {"A": ["s1", "s2", "s3"], "B": ["s1"], "C": ["s1", "s3"], "D": ["s2", "s3"]}
RELIED = {("B", 0): {"s2", "s3"}}


def alices_tasks(postgres: Any) -> dict[str, tuple[Any, ...]]:
    """Alice's task rows, whole, by the first letter of their title (the record's name here)."""
    rows = db_rows(postgres, "SELECT title, * FROM tasks WHERE user_id = 'alice'")
    return {row[0][0]: row[1:] for row in rows}


def expected(live: set[str], snapshots: dict[str, dict[str, tuple[Any, ...]]]) -> dict[str, tuple[Any, ...]]:
    """The rows the standing sessions account for: each row as its newest write a standing session made or
    relied on left it (the snapshot taken right after that session), or no row at all."""
    rows = {}
    for row_id, writers in WRITES.items():
        for position in reversed(range(len(writers))):
            writer = writers[position]
            if writer in live or RELIED.get((row_id, position), set()) & live:
                if writer in snapshots:
                    rows[row_id] = snapshots[writer][row_id]
                break
    return rows


def run_sessions(client: Any, headers: dict[str, str], postgres: Any, names: list[str]) -> tuple[dict, dict]:
    sids, snapshots = {}, {}
    for name in names:
        sids[name], answers, _ = migrate(client, headers, {"task-store": SESSIONS[name]}, name)
        snapshots[name] = alices_tasks(postgres)
    outcomes = [r["outcome"] for r in answers[0]["results"]]
    if names[-1] == "s3":
        assert outcomes == ["updated", "kept_server", "updated", "updated"]
    return sids, snapshots


ORDERS = [
    *[(("s1", "s2"), order) for order in itertools.permutations(("s1", "s2"))],
    *[(("s1", "s2", "s3"), order) for order in itertools.permutations(("s1", "s2", "s3"))],
]


@pytest.mark.parametrize(("sessions", "order"), ORDERS, ids=lambda value: "-".join(value))
def test_every_order_of_rollbacks_ends_where_the_standing_sessions_say(
    client, auth, postgres, sessions: tuple[str, ...], order: tuple[str, ...]
) -> None:
    migrate(client, auth("bob"), {"task-store": SESSIONS["s1"]}, "bob")  # another user's rows never move
    bob = db_rows(postgres, "SELECT * FROM tasks WHERE user_id = 'bob' ORDER BY id")
    headers = auth("alice")
    sids, snapshots = run_sessions(client, headers, postgres, list(sessions))
    live = set(sessions)
    for name in order:
        report = client.post(f"{API}/sessions/{sids[name]}/rollback", headers=headers).json
        assert report["status"] == "rolled_back", report
        live.discard(name)
        assert alices_tasks(postgres) == expected(live, snapshots), f"after rolling back {name}"
        for skip in report["skipped"]:
            assert skip["reason"] in ("changed_since", "used_by_another_session"), skip
    assert alices_tasks(postgres) == {}
    assert db_rows(postgres, "SELECT * FROM tasks WHERE user_id = 'bob' ORDER BY id") == bob


def test_a_row_the_app_changed_or_deleted_since_is_left_and_reported(client, auth, postgres) -> None:
    headers = auth("alice")
    first, _, _ = migrate(client, headers, {"task-store": SESSIONS["s1"]}, "s1")
    second, _, _ = migrate(client, headers, {"task-store": SESSIONS["s2"]}, "s2")
    ids = {title[0]: str(row_id) for title, row_id in db_rows(postgres, "SELECT title, id FROM tasks")}
    # The app edits rows itself, leaving lsmigrate's bookkeeping columns as they were.
    db_rows(postgres, "UPDATE tasks SET title = 'A, edited in the app' WHERE title = 'A2' RETURNING id")
    db_rows(postgres, "UPDATE tasks SET title = 'C, edited in the app' WHERE title = 'C1' RETURNING id")
    db_rows(postgres, "DELETE FROM tasks WHERE title = 'D2' RETURNING id")
    kept = dump(postgres)

    report = client.post(f"{API}/sessions/{second}/rollback", headers=headers).json
    skipped = {skip["id"]: skip["reason"] for skip in report["skipped"]}
    assert skipped == {ids["A"]: "changed_since", ids["D"]: "missing"}
    assert (report["deleted"], report["restored"]) == ({}, {})
    assert dump(postgres) == kept

    report = client.post(f"{API}/sessions/{first}/rollback", headers=headers).json
    skipped = {skip["id"]: skip["reason"] for skip in report["skipped"]}
    assert skipped == {ids["A"]: "changed_since", ids["C"]: "changed_since"}
    assert report["deleted"] == {"tasks": 1}  # B: nobody changed it
    titles = sorted(row[0] for row in db_rows(postgres, "SELECT title FROM tasks WHERE user_id = 'alice'"))
    assert titles == ["A, edited in the app", "C, edited in the app"]


@pytest.mark.parametrize("later_first", [True, False])
def test_an_edit_between_two_sessions_survives_rolling_both_back(client, auth, postgres, later_first: bool) -> None:
    headers = auth("alice")
    first, _, _ = migrate(client, headers, {"task-store": [task(A, "A1", JAN)]}, "s1")
    db_rows(postgres, "UPDATE tasks SET title = 'A, edited in the app' WHERE title = 'A1' RETURNING id")
    second, _, _ = migrate(client, headers, {"task-store": [task(A, "A2", FEB)]}, "s2")
    for sid in (second, first) if later_first else (first, second):
        client.post(f"{API}/sessions/{sid}/rollback", headers=headers)
    # Rolling the second back gives the app's edit back; the first cannot take back what the app wrote over.
    assert db_rows(postgres, "SELECT title FROM tasks WHERE user_id = 'alice'") == [("A, edited in the app",)]


def test_a_row_a_keep_server_resolution_relied_on_stays_until_that_session_goes(
    client, auth, postgres, app, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    headers = auth("alice")
    first, _, _ = migrate(client, headers, {"task-store": [task(A, "A1", JAN)]}, "s1")
    second = open_session(client, headers, "s2")
    body = batch_body("task-store", [task(A, "A2", FEB)])
    answer = put(client, headers, second, 0, body).json
    assert answer["results"][0]["outcome"] == "conflict", answer
    conflict = answer["results"][0]["conflict_id"]
    kept = client.post(f"{API}/sessions/{second}/conflicts/{conflict}", json={"keep": "server"}, headers=headers)
    assert kept.json["outcome"] == "kept_server"
    assert complete(client, headers, second, {"task-store": [task(A, "A2", FEB)]}).status_code == 200

    report = client.post(f"{API}/sessions/{first}/rollback", headers=headers).json
    assert [skip["reason"] for skip in report["skipped"]] == ["used_by_another_session"]
    assert db_rows(postgres, "SELECT title FROM tasks WHERE user_id = 'alice'") == [("A1",)]
    report = client.post(f"{API}/sessions/{second}/rollback", headers=headers).json
    assert report["deleted"] == {"tasks": 1}  # the last session relying on it is gone: the first one's undo ends
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'alice'") == [(0,)]


def test_on_either_database_rollback_tells_a_row_the_app_changed_from_one_it_may_take_back(any_app) -> None:
    client = any_app.test_client()
    with any_app.app_context():
        headers = {"Authorization": f"Bearer {issue_token('alice')}"}
    first, _, _ = migrate(client, headers, {"task-store": SESSIONS["s1"]}, "s1")
    second, _, _ = migrate(client, headers, {"task-store": SESSIONS["s2"]}, "s2")
    with any_app.app_context():
        db.session.execute(text("UPDATE tasks SET title = 'C, edited in the app' WHERE title = 'C1'"))
        db.session.commit()
    for sid in (first, second):
        client.post(f"{API}/sessions/{sid}/rollback", headers=headers)
    with any_app.app_context():
        titles = db.session.execute(text("SELECT title FROM tasks WHERE user_id = 'alice'")).scalars().all()
    assert titles == ["C, edited in the app"]
