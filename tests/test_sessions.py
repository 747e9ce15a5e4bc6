"""Sessions: one open per user (the database decides), resumed by client id, abandoned when idle; dry runs."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest
from flask import Flask

from tests.fixtures_services import PostgresServer
from tests.migration_helpers import (
    ALL_TABLES,
    API,
    batch_body,
    complete,
    db_rows,
    dump,
    migrate,
    open_session,
    put,
)

TASKS = [{"id": "t1", "title": "One"}, {"id": "t2", "title": "Two"}]


def post_session(client: Any, headers: dict[str, str], client_id: str, **extra: Any) -> Any:
    return client.post(f"{API}/sessions", json={"client_session_id": client_id, **extra}, headers=headers)


def idle(postgres: PostgresServer, sid: str) -> None:
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute(
            "UPDATE migration_sessions SET last_active_at = now() - interval '1 hour' WHERE id = %s", (sid,)
        )


def test_a_second_session_of_the_same_user_is_refused_while_the_first_is_open(client, auth) -> None:
    headers = auth("alice")
    first = open_session(client, headers, "tab-1")
    response = post_session(client, headers, "tab-2")
    assert response.status_code == 409
    assert response.json["error"] == {
        "code": "session_active",
        "message": response.json["error"]["message"],
        "details": {"session_id": first},
    }
    assert post_session(client, auth("bob"), "tab-2").status_code == 201  # another user is not concerned
    assert post_session(client, headers, "tab-1").json["session_id"] == first  # a reload resumes
    complete(client, headers, first, {})
    assert post_session(client, headers, "tab-2").status_code == 201  # once verified, the next may open


def test_an_idle_session_is_abandoned_for_a_new_one_and_refuses_batches(client, auth, postgres) -> None:
    headers = auth("alice")
    first = open_session(client, headers, "tab-1")
    put(client, headers, first, 0, batch_body("task-store", TASKS[:1]))
    idle(postgres, first)
    second = post_session(client, headers, "tab-2")
    assert second.status_code == 201
    assert client.get(f"{API}/sessions/{first}", headers=headers).json["status"] == "abandoned"
    late = put(client, headers, first, 1, batch_body("task-store", TASKS[1:], offset=1))
    assert (late.status_code, late.json["error"]["code"]) == (409, "session_closed")
    assert put(client, headers, first, 0, batch_body("task-store", TASKS[:1])).status_code == 200  # a replay
    assert post_session(client, headers, "tab-1").status_code == 409  # tab-2 is open and busy
    complete(client, headers, second.json["session_id"], {})
    resumed = post_session(client, headers, "tab-1")  # nobody else open: the abandoned one reopens
    assert (resumed.status_code, resumed.json["status"], resumed.json["acknowledged_batches"]) == (200, "open", [0])
    assert put(client, headers, first, 1, batch_body("task-store", TASKS[1:], offset=1)).status_code == 200


def test_the_session_idle_limit_is_configurable(app: Flask, client, auth, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "SESSION_IDLE_SECONDS", -1)
    headers = auth("alice")
    open_session(client, headers, "tab-1")
    assert post_session(client, headers, "tab-2").status_code == 201


def test_the_database_itself_refuses_two_open_sessions_of_one_user(client, auth, postgres) -> None:
    open_session(client, auth("alice"), "tab-1")
    with pytest.raises(psycopg.errors.UniqueViolation), psycopg.connect(postgres.conninfo) as connection:
        connection.execute(
            "INSERT INTO migration_sessions (id, user_id, client_session_id, status, dry_run, created_at,"
            " last_active_at) VALUES (%s, 'alice', 'sneaky', 'open', false, now(), now())",
            (str(uuid.uuid4()),),
        )


def test_tabs_racing_to_open_get_one_session(app: Flask, auth, postgres) -> None:
    headers = auth("alice")
    start = threading.Barrier(8)
    answers: list[tuple[int, Any]] = []

    def race(n: int) -> None:
        client = app.test_client()
        start.wait()
        response = post_session(client, headers, f"tab-{n}")
        answers.append((response.status_code, response.json))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * 7
    [winner] = [body["session_id"] for status, body in answers if status == 201]
    assert {body["error"]["details"]["session_id"] for status, body in answers if status == 409} == {winner}
    assert db_rows(postgres, "SELECT count(*) FROM migration_sessions") == [(1,)]


def test_a_dry_run_checks_everything_and_commits_no_record(client, auth, postgres, app, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    headers = auth("alice")
    migrate(client, headers, {"task-store": [TASKS[0] | {"updatedAt": "2024-01-01T00:00:00.000Z"}]}, "seed")
    records = [TASKS[0] | {"title": "Edited"}, TASKS[1], "junk", {"id": "t3", "title": "Three\u0000"}]
    before = dump(postgres)
    open_session(client, headers, "real")  # a dry run does not count as the open session
    sid, answers, verdict = migrate(client, headers, {"task-store": records}, "preview", dry_run=True)
    results = answers[0]["results"]
    assert [r["outcome"] for r in results] == ["conflict", "inserted", "quarantined", "quarantined"]
    assert answers[0]["dry_run"] is True
    assert "conflict_id" not in results[0]
    assert dump(postgres) == before
    assert db_rows(postgres, "SELECT count(*) FROM quarantine") == [(0,)]
    assert db_rows(postgres, "SELECT count(*) FROM migration_conflicts") == [(0,)]
    assert verdict["dry_run"] is True
    assert verdict["kept_keys"]["task-store"]["reason"] == "open_conflicts"
    assert client.get(f"{API}/sessions/{sid}", headers=headers).json["counts"] == {
        "task-store": {"conflict": 1, "inserted": 1, "quarantined": 2}
    }


def test_a_dry_run_id_cannot_turn_into_a_real_session(client, auth) -> None:
    headers = auth("alice")
    sid = open_session(client, headers, "c", dry_run=True)
    again = post_session(client, headers, "c", dry_run=True)
    assert (again.status_code, again.json["session_id"], again.json["dry_run"]) == (200, sid, True)
    real = post_session(client, headers, "c")
    assert (real.status_code, real.json["error"]["code"]) == (409, "dry_run_mismatch")
    assert post_session(client, headers, "c", dry_run="yes").status_code == 422


def test_a_session_describes_its_progress(client, auth) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    put(client, headers, sid, 0, batch_body("task-store", TASKS + ["junk"]))
    described = client.get(f"{API}/sessions/{sid}", headers=headers).json
    assert described["acknowledged_batches"] == [0]
    assert described["counts"] == {"task-store": {"inserted": 2, "quarantined": 1}}
    assert (described["status"], described["dry_run"], described["open_conflicts"]) == ("open", False, 0)
    assert described["user_id"] == "alice"


def test_nothing_of_a_refused_session_request_is_written(client, auth, postgres) -> None:
    headers = auth("alice")
    open_session(client, headers, "tab-1")
    before = dump(postgres, ALL_TABLES)
    assert post_session(client, headers, "tab-2").status_code == 409
    assert post_session(client, headers, "x" * 65).status_code == 422
    assert dump(postgres, ALL_TABLES) == before
