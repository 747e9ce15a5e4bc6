"""The operator's views: the figures (`operator.stats`), a session's audit trail (`operator.audit`) and the
operator page with its JSON routes (`operator.views`), behind the operator's own credential."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask

from lsmigrate.server.operator.auth import issue_operator_token
from tests.fixtures_services import PostgresServer
from tests.migration_helpers import API, batch_body, complete, db_rows, migrate, open_session, put

PAGE = "/lsmigrate/operator"
TASKS = [
    {"id": "t1", "title": "One", "updatedAt": "2024-01-01T00:00:00.000Z"},
    {"id": "t2", "title": "Two", "updatedAt": "2024-01-01T00:00:00.000Z"},
]
EDITED = [TASKS[0] | {"title": "One, edited", "updatedAt": "2024-02-01T00:00:00.000Z"}, TASKS[1]]


def execute(postgres: PostgresServer, statement: str, *params: Any) -> None:
    """Run one statement behind the app's back, committed."""
    with psycopg.connect(postgres.conninfo) as connection:
        connection.execute(statement, params or None)


@pytest.fixture
def operator(app: Flask) -> dict[str, str]:
    """The Authorization header of operator "ops"."""
    with app.app_context():
        return {"Authorization": f"Bearer {issue_operator_token('ops')}"}


def test_the_stats_count_sessions_records_reasons_conflicts_and_the_slowest(
    app, client, auth, operator, postgres, monkeypatch
) -> None:
    alice, bob = auth("alice"), auth("bob")
    slow, _, _ = migrate(client, alice, {"task-store": TASKS + ["junk", 7]}, "alice-1")
    migrate(client, bob, {"task-store": TASKS}, "bob-1")
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    migrate(client, bob, {"task-store": EDITED}, "bob-2")  # t1 differs: an open conflict
    open_session(client, auth("carol"), "carol-1", dry_run=True)
    open_session(client, auth("dave"), "dave-1")
    execute(postgres, "UPDATE migration_sessions SET created_at = completed_at - interval '1 hour' WHERE id = %s", slow)

    answer = client.get(f"{PAGE}/stats", headers=operator)

    assert answer.status_code == 200, answer.json
    stats = answer.json
    assert stats["sessions"] == {"open": 1, "verified": 3}
    assert stats["dry_runs"] == 1
    assert stats["records"] == {"conflict": 1, "inserted": 4, "quarantined": 2, "unchanged": 1}
    assert stats["written"] == 4
    assert stats["quarantine_reasons"] == [{"code": "not_an_object", "count": 2}]
    assert stats["conflict_kinds"] == [{"kind": "exists_differs", "count": 1, "open": 1}]
    assert stats["open_conflicts"] == 1
    first, *others = stats["slowest"]
    assert first == {"session_id": slow, "user_id": "alice", "status": "verified", "records": 4, "seconds": 3600.0}
    assert [row["user_id"] for row in others] == ["bob", "bob"]
    assert all(row["seconds"] < 60 for row in others)


def test_the_stats_lists_are_bounded(client, auth, operator, app) -> None:
    for n in range(3):
        migrate(client, auth(f"user-{n}"), {"task-store": TASKS}, f"c{n}")
    with app.app_context():
        from lsmigrate.server.operator.stats import collect_stats

        assert len(collect_stats(limit=2)["slowest"]) == 2
        with pytest.raises(ValueError):
            collect_stats(limit=0)


ROUTES = [f"{PAGE}/stats", f"{PAGE}/sessions", f"{PAGE}/sessions/{uuid.uuid4()}"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("who", ["nobody", "user", "demo user", "forged"])
def test_the_operator_routes_refuse_anything_but_an_operator_token(app, client, auth, route, who) -> None:
    headers: dict[str, str] = {}
    if who == "user":
        headers = auth("alice")
    elif who == "demo user":
        from lsmigrate.server.api.auth import DEMO_AUDIENCE, issue_token

        with app.app_context():
            headers = {"Authorization": f"Bearer {issue_token('alice', DEMO_AUDIENCE)}"}
    elif who == "forged":
        headers = {"Authorization": "Bearer not-a-token"}
    answer = client.get(route, headers=headers)
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "operator_token_required"
    assert set(answer.json["error"]) == {"code", "message", "details"}


def test_an_operator_token_is_accepted_and_a_revoked_one_refused(client, operator, runner) -> None:
    assert client.get(f"{PAGE}/stats", headers=operator).status_code == 200
    assert runner.invoke(args=["lsmigrate", "revoke", "--user", "ops"]).exit_code == 0
    assert client.get(f"{PAGE}/stats", headers=operator).json["error"]["code"] == "operator_token_required"


def test_the_page_is_a_shell_without_data_under_a_strict_policy(client, auth) -> None:
    sid, _, _ = migrate(client, auth("alice"), {"task-store": TASKS}, "client-with-a-name")
    page = client.get(PAGE)
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for secret in (sid, "alice", "client-with-a-name", "One"):
        assert secret not in html
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in html and "style=" not in html  # nothing inline the policy would block
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = client.get("/lsmigrate/static/operator.js")
    assert 'src="/lsmigrate/static/operator.js"' in html and script.status_code == 200
    assert script.mimetype == "text/javascript"
    source = script.get_data(as_text=True)
    assert "sessionStorage.setItem(" in source and "localStorage." not in source  # the token lives in the tab only
    assert client.get("/lsmigrate/static/operator.css").status_code == 200


def test_the_sessions_list_is_newest_first_filtered_by_user_and_bounded(client, auth, operator) -> None:
    first, _, _ = migrate(client, auth("alice"), {"task-store": TASKS}, "a1")
    second = open_session(client, auth("bob"), "b1")
    listed = client.get(f"{PAGE}/sessions", headers=operator).json["sessions"]
    assert [(s["session_id"], s["user_id"], s["status"]) for s in listed] == [
        (second, "bob", "open"),
        (first, "alice", "verified"),
    ]
    assert listed[1]["records"] == {"inserted": 2}
    only_alice = client.get(f"{PAGE}/sessions?user=alice", headers=operator).json["sessions"]
    assert [s["session_id"] for s in only_alice] == [first]
    assert len(client.get(f"{PAGE}/sessions?limit=1", headers=operator).json["sessions"]) == 1
    for bad in ("limit=0", "limit=501", "limit=many", "user="):
        answer = client.get(f"{PAGE}/sessions?{bad}", headers=operator)
        assert (answer.status_code, answer.json["error"]["code"]) == (422, "invalid_request"), bad


def test_an_unknown_session_has_no_trail(client, operator) -> None:
    for sid in (str(uuid.uuid4()), "nope"):
        answer = client.get(f"{PAGE}/sessions/{sid}", headers=operator)
        assert (answer.status_code, answer.json["error"]["code"]) == (404, "unknown_session")


def _actions(trail: dict[str, Any]) -> list[tuple[str, str]]:
    return [(event["action"], event["actor"]) for event in trail["events"]]


def test_the_trail_lists_every_batch_the_users_resolution_and_the_rollback_with_who_and_when(
    app, client, auth, operator, postgres, monkeypatch
) -> None:
    alice = auth("alice")
    migrate(client, alice, {"task-store": TASKS}, "seed")
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    sid = open_session(client, alice, "second")
    edited = [TASKS[0] | {"title": "One, edited"}]
    answer = put(client, alice, sid, 0, batch_body("task-store", edited)).json
    assert put(client, alice, sid, 1, batch_body("task-store", [TASKS[1], "junk"], offset=1)).status_code == 200
    conflict_id = answer["results"][0]["conflict_id"]
    resolved = client.post(f"{API}/sessions/{sid}/conflicts/{conflict_id}", json={"keep": "local"}, headers=alice)
    assert resolved.status_code == 200, resolved.json
    assert complete(client, alice, sid, {"task-store": [*edited, TASKS[1], "junk"]}).status_code == 200
    assert client.post(f"{API}/sessions/{sid}/rollback", headers=alice).json["restored"] == {"tasks": 1}

    trail = client.get(f"{PAGE}/sessions/{sid}", headers=operator).json

    user = "user:alice"
    assert _actions(trail) == [
        ("session_opened", user),
        ("batch_received", user),
        ("conflict_opened", user),
        ("batch_received", user),
        ("conflict_resolved", user),
        ("session_verified", user),
        ("session_rolled_back", user),
    ]
    moments = [event["at"] for event in trail["events"]]
    assert moments == sorted(moments)
    assert [(b["seq"], b["key"], b["stores"], b["records"], b["counts"]) for b in trail["batches"]] == [
        (0, "task-store", ["tasks"], 1, {"conflict": 1}),
        (1, "task-store", ["tasks"], 2, {"quarantined": 1, "unchanged": 1}),
    ]
    assert not any(batch["results_pruned"] for batch in trail["batches"])
    [conflict] = trail["conflicts"]
    assert (conflict["id"], conflict["status"], conflict["resolution"], conflict["resolved_by"]) == (
        conflict_id,
        "resolved",
        "local",
        user,
    )
    resolution = trail["events"][4]
    assert resolution["at"] == conflict["resolved_at"]
    assert resolution["details"] | {"resolution": "local", "kind": None} == {
        "conflict_id": conflict_id,
        "key": "task-store",
        "index": 0,
        "resolution": "local",
        "kind": None,
    }
    assert db_rows(postgres, "SELECT resolved_by FROM migration_conflicts WHERE id = %s", conflict_id) == [(user,)]
    rollback = trail["rollback"]
    assert rollback["by"] == user and rollback["restored"] == {"tasks": 1}
    assert rollback["at"] == trail["session"]["rolled_back_at"] == trail["events"][-1]["at"]
    assert trail["session"]["rolled_back_by"] == user
    assert trail["events"][-1]["details"]["restored"] == {"tasks": 1}


def test_a_rollback_closing_an_open_conflict_names_the_rollbacks_actor(
    app, client, auth, operator, runner, postgres, monkeypatch
) -> None:
    alice = auth("alice")
    migrate(client, alice, {"task-store": TASKS}, "seed")
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    sid, _, _ = migrate(client, alice, {"task-store": EDITED}, "second")
    assert runner.invoke(args=["lsmigrate", "rollback", sid]).exit_code == 0
    trail = client.get(f"{PAGE}/sessions/{sid}", headers=operator).json
    assert ("conflict_closed", "cli") in _actions(trail)
    assert db_rows(postgres, "SELECT resolved_by FROM migration_conflicts WHERE session_id = %s", sid) == [("cli",)]
    assert trail["conflicts"][0]["resolution"] == "rolled_back"
    assert _actions(trail)[-1] == ("session_rolled_back", "cli")


def test_a_trail_from_before_the_actors_were_kept_says_unknown(client, auth, operator, postgres) -> None:
    alice = auth("alice")
    sid, _, _ = migrate(client, alice, {"task-store": TASKS}, "old")
    client.post(f"{API}/sessions/{sid}/rollback", headers=alice)
    execute(postgres, "UPDATE migration_sessions SET rolled_back_by = NULL WHERE id = %s", sid)
    trail = client.get(f"{PAGE}/sessions/{sid}", headers=operator).json
    assert _actions(trail)[-1] == ("session_rolled_back", "unknown")


def test_operator_calls_count_against_the_operator_never_a_user(make_app, redis_server, auth) -> None:
    app = make_app(redis_server.url, RATELIMIT_DEFAULT="3 per minute")
    client = app.test_client()
    store = redis.Redis.from_url(redis_server.url)
    with app.app_context():
        operator = {"Authorization": f"Bearer {issue_operator_token('ops')}"}
    for _ in range(3):  # a user's token on the operator's routes: refused, and counted against the address
        assert client.get(f"{PAGE}/stats", headers=auth("alice")).status_code == 401
    counted = [key.decode() for key in store.scan_iter("*")]
    assert counted and not any("alice" in key or "user:" in key for key in counted), counted
    for _ in range(3):
        assert client.get(f"{PAGE}/stats", headers=operator).status_code == 200
    assert any("operator:ops" in key.decode() for key in store.scan_iter("*"))
    limited = client.get(f"{PAGE}/stats", headers=operator)  # the operator's own three, not the address's
    assert (limited.status_code, limited.json["error"]["code"]) == (429, "rate_limited")
