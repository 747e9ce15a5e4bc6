"""The migration protocol on a real PostgreSQL and Redis."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import flask_migrate
import pytest
import redis
from flask.testing import FlaskClient

from lsmigrate.demo.stores import STORES
from lsmigrate.server import create_app
from lsmigrate.server.api.auth import issue_token
from lsmigrate.server.cache import user_key
from lsmigrate.server.db import db
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.shared.canonical import manifest_digest
from tests.fixtures_services import RedisServer
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

TASKS = [
    {"id": "task-1", "title": "First", "status": "IN_PROGRESS", "createdAt": "2024-01-15T10:30:00.000Z"},
    {"id": str(uuid.uuid4()), "title": "Second", "status": "DONE", "mode": "ask"},
    {"id": "task-3", "title": "Third", "pullRequest": {"url": "https://x/pull/1", "number": 1}},
]

ENVIRONMENTS = [{"id": "env-1", "name": "Production", "githubToken": TOKEN}]
DRAFT_KEY = "react-hook-form-task-form"
DRAFT = {
    "title": "<script>alert('x')</script> Fix the <b>login</b> page",
    "description": 'Ünïcødé — 日本語 ✓ 🚀\n<p onclick="steal()">second line</p>',
    "status": "IN_PROGRESS",
    "labels": ["bug", "é"],
    "estimate": {"hours": 3.5, "confident": False, "reviewer": None},
    "__proto__": {"polluted": True},
}
PREFERENCES = {
    "theme": "dark",
    "language": "fr-CA",
    "sidebar": {"collapsed": True, "width": 280},
    "recentSearches": ["<b>bold</b>", "café", "🚀"],
    "notifications": {"email": False, "digest": "weekly"},
}


def migrate_all(client: FlaskClient, headers: dict[str, str], client_id: str = "client-1") -> dict[str, Any]:
    sid = open_session(client, headers, client_id)
    assert put(client, headers, sid, 0, batch_body("task-store", TASKS[:2])).status_code == 200
    assert put(client, headers, sid, 1, batch_body("task-store", TASKS[2:], offset=2)).status_code == 200
    assert put(client, headers, sid, 2, batch_body("environments", ENVIRONMENTS)).status_code == 200
    response = complete(client, headers, sid, {"task-store": TASKS, "environments": ENVIRONMENTS})
    assert response.status_code == 200, response.json
    return dict(response.json)


def migrate_documents(
    client: FlaskClient, headers: dict[str, str], client_id: str, draft: dict[str, Any] = DRAFT
) -> tuple[str, dict[str, Any]]:
    """One session with a draft batch and a preferences batch, completed: (session id, verdict)."""
    sid = open_session(client, headers, client_id)
    assert put(client, headers, sid, 0, batch_body(DRAFT_KEY, [draft])).status_code == 200
    assert put(client, headers, sid, 1, batch_body("user-preferences", [PREFERENCES])).status_code == 200
    response = complete(client, headers, sid, {DRAFT_KEY: [draft], "user-preferences": [PREFERENCES]})
    assert response.status_code == 200, response.json
    return sid, dict(response.json)


def test_a_session_in_two_batches_lands_the_rows_for_that_user(client, auth, postgres) -> None:
    verdict = migrate_all(client, auth("alice"))
    assert verdict["deletable_keys"] == ["environments", "task-store"]
    rows = db_rows(postgres, "SELECT user_id, title, status, priority FROM tasks ORDER BY title")
    assert rows == [
        ("alice", "First", "in_progress", "medium"),
        ("alice", "Second", "completed", "low"),
        ("alice", "Third", "pending", "high"),
    ]
    assert db_rows(postgres, "SELECT user_id, name, is_active FROM environments") == [("alice", "Production", False)]
    ledger = db_rows(postgres, "SELECT key, index, outcome FROM migration_ledger ORDER BY key, index")
    assert ledger == [("environments", 0, "inserted")] + [("task-store", i, "inserted") for i in range(3)]


def test_another_users_token_sees_none_of_them(client, auth) -> None:
    migrate_all(client, auth("alice"))
    assert len(client.get("/api/tasks", headers=auth("alice")).json["tasks"]) == 3
    assert client.get("/api/tasks", headers=auth("bob")).json == {"tasks": []}
    assert client.get("/api/environments", headers=auth("bob")).json == {"environments": []}


def test_another_users_session_is_forbidden(client, auth) -> None:
    sid = open_session(client, auth("alice"))
    response = put(client, auth("bob"), sid, 0, batch_body("task-store", TASKS))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "foreign_session"


def every_store() -> dict[str, list[Any]]:
    return {
        "task-store": [*TASKS, "junk", {"id": "task-1", "title": "Dup", "updatedAt": "2020-01-01T00:00:00.000Z"}],
        "environments": [*ENVIRONMENTS, {"id": "env-2", "name": "Production"}],
        DRAFT_KEY: [DRAFT],
        "user-preferences": [PREFERENCES],
    }


LEDGER = (
    "SELECT key, index, batch_seq, source_id, digest, target_table, target_id, warnings, version_at"
    " FROM migration_ledger WHERE session_id = %s ORDER BY key, index"
)


def ledger(postgres: Any, sid: str) -> list[tuple[Any, ...]]:
    # A rename happens when the row is written: the second run finds the renamed row unchanged, without the warning.
    return [
        (*entry[:7], [w for w in entry[7] if w["code"] != "name_taken"], *entry[8:])
        for entry in db_rows(postgres, LEDGER, sid)
    ]


def test_the_whole_migration_twice_gives_the_same_rows_and_ledger_and_all_unchanged(client, auth, postgres) -> None:
    headers = auth("alice")
    first, answers, verdict = migrate(client, headers, every_store(), "run-1")
    # task-store holds quarantined records: its store strips (the default), so the key stays.
    assert verdict["deletable_keys"] == sorted(set(every_store()) - {"task-store"}), verdict["kept_keys"]
    assert verdict["kept_keys"]["task-store"]["reason"] == "quarantined_records"
    rows = dump(postgres)
    second, again, verdict = migrate(client, headers, every_store(), "run-2")
    assert dump(postgres) == rows
    assert ledger(postgres, second) == ledger(postgres, first)
    firsts = [r["outcome"] for answer in answers for r in answer["results"]]
    seconds = [r["outcome"] for answer in again for r in answer["results"]]
    # What was written is now unchanged; what went to the quarantine goes there again.
    assert seconds == ["unchanged" if o in ("inserted", "updated") else o for o in firsts]
    assert set(firsts) == {"inserted", "quarantined", "superseded"}
    assert verdict["deletable_keys"] == sorted(set(every_store()) - {"task-store"})
    assert db_rows(postgres, "SELECT count(*) FROM migration_ledger WHERE pre_image IS NOT NULL") == [(0,)]


def test_the_same_batch_twice_replays_the_stored_response(client, auth, postgres) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    first = put(client, headers, sid, 0, batch_body("task-store", TASKS))
    everything = dump(postgres, ALL_TABLES)
    second = put(client, headers, sid, 0, batch_body("task-store", TASKS))
    assert second.status_code == 200
    assert second.json == first.json
    assert dump(postgres, ALL_TABLES) == everything
    assert db_rows(postgres, "SELECT count(*) FROM tasks") == [(3,)]
    assert db_rows(postgres, "SELECT count(*) FROM migration_ledger") == [(3,)]


def test_a_different_body_under_the_same_seq_is_a_conflict(client, auth) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    put(client, headers, sid, 0, batch_body("task-store", TASKS[:1]))
    response = put(client, headers, sid, 0, batch_body("task-store", TASKS[1:2]))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "batch_mismatch"


def test_a_session_id_is_resumed_with_its_acknowledged_batches(client, auth) -> None:
    headers = auth("alice")
    sid = open_session(client, headers, "tab-1")
    put(client, headers, sid, 0, batch_body("task-store", TASKS))
    again = client.post(f"{API}/sessions", json={"client_session_id": "tab-1"}, headers=headers)
    assert again.status_code == 200
    assert again.json["session_id"] == sid
    assert again.json["acknowledged_batches"] == [0]


def test_a_uuid_owned_by_another_user_is_never_touched(client, auth, postgres) -> None:
    shared_id = str(uuid.uuid4())
    headers_a, headers_b = auth("alice"), auth("bob")
    sid_a = open_session(client, headers_a)
    put(client, headers_a, sid_a, 0, batch_body("task-store", [{"id": shared_id, "title": "Alice's"}]))
    sid_b = open_session(client, headers_b)
    response = put(client, headers_b, sid_b, 0, batch_body("task-store", [{"id": shared_id, "title": "Bob's"}]))
    [result] = response.json["results"]
    assert result["outcome"] == "inserted"
    assert result["target_id"] != shared_id
    assert {"code": "foreign_id", "field": "id"} in result["warnings"]
    rows = db_rows(postgres, "SELECT id::text, user_id, title FROM tasks ORDER BY user_id")
    assert rows == [(shared_id, "alice", "Alice's"), (result["target_id"], "bob", "Bob's")]


def test_a_changed_record_without_a_newer_timestamp_keeps_the_row_and_quarantines_it(client, auth, postgres) -> None:
    # newest_wins, the tasks' policy: TASKS[0] has no updatedAt, so nothing says it is newer than the row.
    headers = auth("alice")
    migrate_all(client, headers, "run-1")
    changed = [dict(TASKS[0], title="First, edited"), *TASKS[1:]]
    sid = open_session(client, headers, "run-2")
    response = put(client, headers, sid, 0, batch_body("task-store", changed))
    assert response.json["counts"] == {"kept_server": 1, "unchanged": 2}
    verdict = complete(client, headers, sid, {"task-store": changed})
    assert verdict.status_code == 200
    assert verdict.json["deletable_keys"] == ["task-store"]  # the server's version won; the local one is kept
    assert db_rows(postgres, "SELECT title FROM tasks WHERE title LIKE 'First%'") == [("First",)]
    quarantined = db_rows(postgres, "SELECT index, raw, reasons->0->>'code' FROM quarantine")
    assert quarantined == [(0, changed[0], "kept_server")]


def test_bad_records_go_to_the_quarantine_with_their_raw_value(client, auth, postgres) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    records = [{"title": {"not": "text"}}, "just a string", {"title": "fine"}]
    response = put(client, headers, sid, 0, batch_body("task-store", records))
    assert response.json["counts"] == {"quarantined": 2, "inserted": 1}
    quarantined = db_rows(postgres, "SELECT index, raw FROM quarantine ORDER BY index")
    assert quarantined == [(0, {"title": {"not": "text"}}), (1, "just a string")]
    verdict = complete(client, headers, sid, {"task-store": records})
    assert verdict.json["deletable_keys"] == []
    assert verdict.json["kept_keys"]["task-store"]["reason"] == "quarantined_records"


def test_a_manifest_that_does_not_match_the_ledger_lists_no_key(client, auth) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    put(client, headers, sid, 0, batch_body("task-store", TASKS[:2]))
    response = complete(client, headers, sid, {"task-store": TASKS})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "manifest_mismatch"
    assert response.json["error"]["details"]["mismatches"][0]["key"] == "task-store"
    assert "deletable_keys" not in response.json


def test_a_draft_and_the_preferences_land_whole_for_that_user(client, auth, postgres) -> None:
    sid, verdict = migrate_documents(client, auth("alice"), "client-1")
    assert verdict["deletable_keys"] == [DRAFT_KEY, "user-preferences"]
    assert verdict["counts"] == {DRAFT_KEY: {"inserted": 1}, "user-preferences": {"inserted": 1}}
    drafts = db_rows(postgres, "SELECT user_id, key, data, migration_session_id::text FROM form_drafts")
    assert drafts == [("alice", DRAFT_KEY, DRAFT, sid)]
    titles = db_rows(postgres, "SELECT data->>'title', data->>'description' FROM form_drafts")
    assert titles == [(DRAFT["title"], DRAFT["description"])]
    assert db_rows(postgres, "SELECT user_id, data FROM user_preferences") == [("alice", PREFERENCES)]
    ledger = db_rows(postgres, "SELECT key, outcome, target_table, target_id::text FROM migration_ledger ORDER BY key")
    [(draft_id,)] = db_rows(postgres, "SELECT id::text FROM form_drafts")
    [(preferences_id,)] = db_rows(postgres, "SELECT id::text FROM user_preferences")
    assert ledger == [
        (DRAFT_KEY, "inserted", "form_drafts", draft_id),
        ("user-preferences", "inserted", "user_preferences", preferences_id),
    ]


def test_another_user_sees_none_of_their_draft_or_preferences(client, auth, postgres) -> None:
    migrate_documents(client, auth("alice"), "client-1")
    assert db_rows(postgres, "SELECT count(*) FROM form_drafts WHERE user_id = 'bob'") == [(0,)]
    assert db_rows(postgres, "SELECT count(*) FROM user_preferences WHERE user_id = 'bob'") == [(0,)]

    bobs_draft = {"title": "Bob's own draft"}
    _, verdict = migrate_documents(client, auth("bob"), "client-1", draft=bobs_draft)
    assert verdict["counts"][DRAFT_KEY] == {"inserted": 1}
    drafts = db_rows(postgres, "SELECT user_id, key, data FROM form_drafts ORDER BY user_id")
    assert drafts == [("alice", DRAFT_KEY, DRAFT), ("bob", DRAFT_KEY, bobs_draft)]
    assert db_rows(postgres, "SELECT count(DISTINCT id) FROM form_drafts") == [(2,)]


def test_the_same_draft_and_preferences_again_are_unchanged(client, auth, postgres) -> None:
    headers = auth("alice")
    first_sid, _ = migrate_documents(client, headers, "run-1")
    second_sid, verdict = migrate_documents(client, headers, "run-2")
    assert second_sid != first_sid
    assert verdict["counts"] == {DRAFT_KEY: {"unchanged": 1}, "user-preferences": {"unchanged": 1}}
    assert verdict["deletable_keys"] == [DRAFT_KEY, "user-preferences"]
    drafts = db_rows(postgres, "SELECT data, migration_session_id::text FROM form_drafts")
    assert drafts == [(DRAFT, first_sid)]
    preferences = db_rows(postgres, "SELECT data, migration_session_id::text FROM user_preferences")
    assert preferences == [(PREFERENCES, first_sid)]


def test_an_edited_draft_keeps_the_row_and_its_key_goes_with_the_draft_in_the_quarantine(
    client, auth, postgres
) -> None:
    # A draft has no timestamp field: under newest_wins nothing says the local one is newer.
    headers = auth("alice")
    migrate_documents(client, headers, "run-1")
    edited = dict(DRAFT, title="Edited since")
    _, verdict = migrate_documents(client, headers, "run-2", draft=edited)
    assert verdict["counts"][DRAFT_KEY] == {"kept_server": 1}
    assert verdict["deletable_keys"] == [DRAFT_KEY, "user-preferences"]
    assert db_rows(postgres, "SELECT data FROM form_drafts") == [(DRAFT,)]
    assert db_rows(postgres, "SELECT raw FROM quarantine") == [(edited,)]


@pytest.mark.parametrize("spec", list(STORES), ids=lambda spec: spec.name)
def test_every_demo_store_has_a_model_with_its_columns(app, spec) -> None:
    with app.app_context():
        model = current_lsmigrate().model_for(spec)
    assert model.__tablename__ == spec.table
    columns = set(model.__table__.columns.keys())
    for column in spec.mapper.columns:
        expected = {f"{column.name}_hint", f"{column.name}_encrypted"} if column.secret else {column.name}
        assert expected <= columns
    for name in (spec.schema.document_column, spec.schema.key_column):
        assert name is None or name in columns


def test_a_store_without_a_model_is_a_start_up_error(postgres) -> None:
    drafts = STORES.named("form_drafts")
    nowhere = dataclasses.replace(drafts, table="nowhere")
    with pytest.raises(LookupError, match="store 'form_drafts' writes into table 'nowhere', but no model maps"):
        create_app({"SQLALCHEMY_DATABASE_URI": postgres.url, "SECRET_KEY": "k", "DEMO": True, "STORES": [nowhere]})


def redis_text(url: str) -> str:
    """Every value Redis holds, whatever its type, as text."""
    cache = redis.Redis.from_url(url)
    parts = []
    for name in cache.keys():
        parts.append(repr(name))
        kind = cache.type(name)
        if kind == b"string":
            parts.append(repr(cache.get(name)))
        elif kind == b"hash":
            parts.append(repr(cache.hgetall(name)))
        else:
            parts.append(repr(cache.dump(name)))
    return "\n".join(parts)


def test_the_github_token_is_encrypted_at_rest_and_never_returned(client, auth, postgres, redis_server) -> None:
    headers = auth("alice")
    verdict = migrate_all(client, headers)
    environments = client.get("/api/environments", headers=headers)
    assert environments.json["environments"][0]["github_token_hint"] == "…6789"
    everything = json.dumps(verdict) + environments.get_data(as_text=True)
    stored = db_rows(postgres, "SELECT github_token_encrypted, metadata::text FROM environments")
    ledger = db_rows(postgres, "SELECT warnings::text FROM migration_ledger")
    batches = db_rows(postgres, "SELECT response::text FROM migration_batches")
    assert stored[0][0] and TOKEN not in stored[0][0]
    for text in [everything, *map(str, stored), *map(str, ledger), *map(str, batches), redis_text(redis_server.url)]:
        assert TOKEN not in text


def test_reads_see_a_batch_as_soon_as_it_is_committed(client, auth, redis_server: RedisServer) -> None:
    headers = auth("alice")
    assert client.get("/api/tasks", headers=headers).json == {"tasks": []}
    assert redis.Redis.from_url(redis_server.url).exists(user_key("alice", "records"))  # the empty answer was cached
    migrate_all(client, headers)
    assert len(client.get("/api/tasks", headers=headers).json["tasks"]) == 3


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[" * 100_000, 400, "invalid_json"),
        (b'{"key": "task-store"}', 422, "invalid_request"),
        (b'{"key": "nope", "offset": 0, "records": [], "digests": []}', 422, "unknown_store"),
        (b'{"key": "task-store", "offset": 0, "records": [1], "digests": []}', 422, "digest_mismatch"),
        (
            b'{"key": "task-store", "offset": 0, "records": [1], "digests": ["' + b"0" * 64 + b'"]}',
            422,
            "digest_mismatch",
        ),
    ],
)
def test_bad_batches_get_their_error_code_and_write_nothing(client, auth, postgres, body, status, code) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    response = client.put(f"{API}/sessions/{sid}/batches/0", data=body, headers=headers)
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert db_rows(postgres, "SELECT count(*) FROM migration_ledger") == [(0,)]


def test_a_batch_may_carry_one_digest_for_its_records_instead_of_one_per_record(client, auth, postgres) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    per_record = batch_body("task-store", TASKS)
    body = {key: value for key, value in per_record.items() if key != "digests"}
    body["records_digest"] = manifest_digest(per_record["digests"])
    response = put(client, headers, sid, 0, body)
    assert response.status_code == 200, response.json
    assert [result["outcome"] for result in response.json["results"]] == ["inserted"] * 3
    assert complete(client, headers, sid, {"task-store": TASKS}).json["deletable_keys"] == ["task-store"]
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'alice'") == [(3,)]


def test_a_batch_whose_records_differ_from_its_one_digest_is_refused_without_indexes(client, auth, postgres) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    digests = batch_body("task-store", TASKS)["digests"]
    changed = [TASKS[0] | {"title": "Changed on the way"}, *TASKS[1:]]
    body = {"key": "task-store", "offset": 0, "records": changed, "records_digest": manifest_digest(digests)}
    response = put(client, headers, sid, 0, body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "digest_mismatch"
    assert response.json["error"]["details"] == {"indexes": None}
    located = put(client, headers, sid, 0, {**batch_body("task-store", changed), "digests": digests})
    assert located.status_code == 422
    assert located.json["error"]["details"] == {"indexes": [0]}
    assert db_rows(postgres, "SELECT count(*) FROM migration_ledger") == [(0,)]
    assert db_rows(postgres, "SELECT count(*) FROM tasks") == [(0,)]


@pytest.mark.parametrize("digests", ["both", "neither"])
def test_a_batch_carries_exactly_one_kind_of_digest(client, auth, postgres, digests) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    body = batch_body("task-store", TASKS)
    if digests == "both":
        body["records_digest"] = manifest_digest(body["digests"])
    else:
        del body["digests"]
    response = put(client, headers, sid, 0, body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_request"
    assert "records_digest" in json.dumps(response.json["error"]["details"])
    assert db_rows(postgres, "SELECT count(*) FROM migration_ledger") == [(0,)]


@pytest.mark.parametrize(
    ("sid", "status", "code"),
    [(str(uuid.uuid4()), 404, "unknown_session"), ("not-a-uuid", 404, "unknown_session")],
)
def test_an_unknown_session_is_404(client, auth, sid, status, code) -> None:
    response = client.put(f"{API}/sessions/{sid}/batches/0", json=batch_body("task-store", TASKS), headers=auth("a"))
    assert response.status_code == status
    assert response.json["error"]["code"] == code


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Bearer forged"}, "invalid_token"),
        ({"Authorization": "Basic x"}, "missing_token"),
    ],
)
def test_requests_without_a_valid_token_are_401(client, headers, code) -> None:
    for path in (f"{API}/sessions", "/api/tasks"):
        response = (
            client.post(path, json={}, headers=headers)
            if path.endswith("sessions")
            else client.get(path, headers=headers)
        )
        assert response.status_code == 401
        assert response.json["error"]["code"] == code


def test_the_user_comes_from_the_token_not_the_body(client, auth, postgres) -> None:
    headers = auth("alice")
    response = client.post(f"{API}/sessions", json={"client_session_id": "c", "user_id": "bob"}, headers=headers)
    assert response.status_code == 422
    sid = open_session(client, headers)
    body = batch_body("task-store", TASKS)
    body["user_id"] = "bob"
    assert put(client, headers, sid, 0, body).status_code == 422
    assert db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = 'bob'") == [(0,)]


def test_errors_outside_the_protocol_use_the_envelope_too(client) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert client.get("/healthz").json == {"status": "ok"}


def test_the_github_token_in_clear_is_in_no_response_log_or_row(
    client, auth, postgres, app, caplog, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"environments": "ask"})
    caplog.set_level("DEBUG")
    headers = auth("alice")
    older = {"id": "env-1", "name": "Prod", "githubToken": TOKEN, "updatedAt": "2024-01-01T00:00:00.000Z"}
    seed, _, _ = migrate(client, headers, {"environments": [older]}, "seed")
    responses = [client.get(f"{API}/sessions/{seed}", headers=headers)]
    records = [
        older | {"description": "conflict", "updatedAt": "2024-02-01T00:00:00.000Z"},  # ask: conflict
        {"id": "env-2", "name": {"bad": "name"}, "githubToken": TOKEN},  # quarantined
        {"id": "env-3", "name": "Other", "githubToken": TOKEN, "updatedAt": "2024-01-01T00:00:00.000Z"},
        {"id": "env-3", "name": "Other", "githubToken": TOKEN + "x", "updatedAt": "2024-02-01T00:00:00.000Z"},
    ]
    sid, answers, verdict = migrate(client, headers, {"environments": records}, "second")
    responses.append(client.get(f"{API}/sessions/{sid}/conflicts", headers=headers))
    responses.append(client.get(f"{API}/sessions/{sid}/quarantine", headers=headers))
    conflict_id = answers[0]["results"][0]["conflict_id"]
    responses.append(
        client.post(f"{API}/sessions/{sid}/conflicts/{conflict_id}", json={"keep": "local"}, headers=headers)
    )
    responses.append(client.get("/api/environments", headers=headers))
    responses.append(client.post(f"{API}/sessions/{sid}/rollback", headers=headers))
    texts = [json.dumps(answers), json.dumps(verdict), caplog.text, *(r.get_data(as_text=True) for r in responses)]
    for table in ALL_TABLES:
        texts.append(str(db_rows(postgres, f"SELECT * FROM {table}")))
    assert [r.status_code for r in responses] == [200] * len(responses)
    assert db_rows(postgres, "SELECT count(*) FROM quarantine WHERE session_id = %s", sid) == [(2,)]
    for text in texts:
        assert TOKEN not in text


def test_the_sqlite_default_runs_the_whole_protocol(tmp_path) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo.sqlite'}",
            "SECRET_KEY": "k",
            "DEMO": True,
            "CONFLICT_POLICIES": {"environments": "ask"},
        }
    )
    client = app.test_client()
    with app.app_context():
        flask_migrate.upgrade()
        headers = {"Authorization": f"Bearer {issue_token('alice')}"}
    try:
        keys = {"task-store": TASKS + ["junk"], "environments": ENVIRONMENTS, DRAFT_KEY: [DRAFT]}
        _, answers, _ = migrate(client, headers, keys, "dry", dry_run=True)
        assert [r["outcome"] for r in answers[0]["results"]] == ["inserted"] * 3 + ["quarantined"]
        assert client.get("/api/tasks", headers=headers).json == {"tasks": []}
        first, _, verdict = migrate(client, headers, keys, "first")
        assert verdict["deletable_keys"] == sorted(set(keys) - {"task-store"})  # "junk" is in the quarantine
        assert verdict["cleanup"] == {DRAFT_KEY: "delete", "environments": "strip"}
        newer = [dict(ENVIRONMENTS[0], name="Renamed", updatedAt="2030-01-01T00:00:00.000Z")]
        second, answers, verdict = migrate(client, headers, {"environments": newer}, "second")
        assert verdict["kept_keys"]["environments"]["reason"] == "open_conflicts"
        conflict = answers[0]["results"][0]["conflict_id"]
        resolved = client.post(f"{API}/sessions/{second}/conflicts/{conflict}", json={"keep": "local"}, headers=headers)
        assert resolved.json["outcome"] == "updated"
        assert client.get("/api/environments", headers=headers).json["environments"][0]["name"] == "Renamed"
        assert client.post(f"{API}/sessions/{second}/rollback", headers=headers).json["restored"] == {"environments": 1}
        assert client.get("/api/environments", headers=headers).json["environments"][0]["name"] == "Production"
        assert client.post(f"{API}/sessions/{first}/rollback", headers=headers).json["deleted"] == {
            "environments": 1,
            "form_drafts": 1,
            "tasks": 3,
        }
        assert client.get("/api/tasks", headers=headers).json == {"tasks": []}
    finally:
        with app.app_context():
            db.engine.dispose()


def test_a_thousand_environments_wanting_one_name_each_get_their_own(client, auth, postgres) -> None:
    headers = auth("alice")
    sid = open_session(client, headers)
    for seq in range(2):
        batch = [{"id": f"env-{seq}-{i}", "name": "Prod"} for i in range(500)]
        assert put(client, headers, sid, seq, batch_body("environments", batch, offset=500 * seq)).status_code == 200
    names = [name for (name,) in db_rows(postgres, "SELECT name FROM environments WHERE user_id = 'alice'")]
    assert sorted(names) == sorted(["Prod", *(f"Prod ({n})" for n in range(2, 1001))])
