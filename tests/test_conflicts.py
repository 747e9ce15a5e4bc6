"""Every conflict kind of design §5 under every policy, decided in the batch; resolving `ask` conflicts."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from flask import Flask

from lsmigrate.server import create_app
from lsmigrate.shared.canonical import digest
from tests.migration_helpers import (
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

POLICIES = ("newest_wins", "keep_server", "keep_local", "ask")
TASK_ID = str(uuid.uuid4())
SERVER = {"id": TASK_ID, "title": "On the server", "updatedAt": "2024-05-01T12:00:00.000Z"}
NEWER = {"id": TASK_ID, "title": "Edited later", "updatedAt": "2024-06-01T12:00:00.000Z"}
OLDER = {"id": TASK_ID, "title": "Edited before", "updatedAt": "2024-04-01T12:00:00.000Z"}
SAME_TIME = {"id": TASK_ID, "title": "Edited at the same time", "updatedAt": SERVER["updatedAt"]}
UNDATED = {"id": TASK_ID, "title": "Edited, no date"}


@pytest.fixture
def use_policy(app: Flask, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """use_policy(name): every store decides exists_differs by that policy (app config CONFLICT_POLICIES)."""

    def use(policy: str) -> None:
        names = ("tasks", "environments", "form_drafts", "user_preferences")
        monkeypatch.setitem(app.config, "CONFLICT_POLICIES", dict.fromkeys(names, policy))

    return use


def outcomes(answers: list[dict[str, Any]]) -> list[str]:
    return [result["outcome"] for answer in answers for result in answer["results"]]


def titles(postgres: Any) -> list[str]:
    return [title for (title,) in db_rows(postgres, "SELECT title FROM tasks ORDER BY title")]


# exists_differs: (the local record, {policy: (outcome, the title the row ends with)})
EXISTS_DIFFERS = {
    "newer": (
        NEWER,
        {
            "newest_wins": ("updated", NEWER["title"]),
            "keep_server": ("kept_server", SERVER["title"]),
            "keep_local": ("updated", NEWER["title"]),
            "ask": ("conflict", SERVER["title"]),
        },
    ),
    "older": (
        OLDER,
        {
            "newest_wins": ("kept_server", SERVER["title"]),
            "keep_server": ("kept_server", SERVER["title"]),
            "keep_local": ("updated", OLDER["title"]),
            "ask": ("conflict", SERVER["title"]),
        },
    ),
    "same time": (
        SAME_TIME,
        {
            "newest_wins": ("kept_server", SERVER["title"]),
            "keep_server": ("kept_server", SERVER["title"]),
            "keep_local": ("updated", SAME_TIME["title"]),
            "ask": ("conflict", SERVER["title"]),
        },
    ),
    "no timestamp": (
        UNDATED,
        {
            "newest_wins": ("kept_server", SERVER["title"]),
            "keep_server": ("kept_server", SERVER["title"]),
            "keep_local": ("updated", UNDATED["title"]),
            "ask": ("conflict", SERVER["title"]),
        },
    ),
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", list(EXISTS_DIFFERS))
def test_exists_differs_is_decided_by_the_policy(client, auth, postgres, use_policy, policy, case) -> None:
    use_policy(policy)
    headers = auth("alice")
    migrate(client, headers, {"task-store": [SERVER]}, "seed")
    [server_row] = db_rows(postgres, "SELECT title, source_digest FROM tasks")
    local, expected = EXISTS_DIFFERS[case]
    outcome, title = expected[policy]
    sid, answers, verdict = migrate(client, headers, {"task-store": [local]}, "second")
    assert outcomes(answers) == [outcome]
    assert titles(postgres) == [title]
    [(ledger_outcome, pre_image)] = db_rows(
        postgres, "SELECT outcome, pre_image FROM migration_ledger WHERE session_id = %s", sid
    )
    assert ledger_outcome == outcome
    quarantined = db_rows(postgres, "SELECT raw, reasons->0->>'code' FROM quarantine WHERE session_id = %s", sid)
    conflicts = db_rows(postgres, "SELECT local, server->>'title', status FROM migration_conflicts")
    if outcome == "updated":
        assert (pre_image["title"], pre_image["source_digest"]) == server_row
    else:
        assert pre_image is None
    assert quarantined == ([(local, "kept_server")] if outcome == "kept_server" else [])
    assert conflicts == ([(local, SERVER["title"], "open")] if outcome == "conflict" else [])
    if outcome == "conflict":
        assert verdict["deletable_keys"] == []
        assert verdict["kept_keys"]["task-store"] == {"reason": "open_conflicts", "outcomes": {"conflict": 1}}
    else:
        assert verdict["deletable_keys"] == ["task-store"]


@pytest.mark.parametrize("policy", POLICIES)
def test_unchanged_writes_nothing_under_every_policy(client, auth, postgres, use_policy, policy) -> None:
    use_policy(policy)
    headers = auth("alice")
    migrate(client, headers, {"task-store": [SERVER]}, "seed")
    before = dump(postgres)
    _, answers, verdict = migrate(client, headers, {"task-store": [SERVER]}, "second")
    assert outcomes(answers) == ["unchanged"]
    assert dump(postgres) == before
    assert verdict["deletable_keys"] == ["task-store"]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_duplicate_in_one_batch_keeps_the_newest_and_quarantines_the_other(
    client, auth, postgres, use_policy, policy
) -> None:
    use_policy(policy)
    records = [OLDER, NEWER, SAME_TIME | {"updatedAt": NEWER["updatedAt"]}]
    _, answers, verdict = migrate(client, auth("alice"), {"task-store": records})
    assert outcomes(answers) == ["superseded", "inserted", "superseded"]  # a tie: the first read wins
    assert all({"code": "duplicate_in_source", "field": "id"} in r["warnings"] for r in answers[0]["results"])
    assert titles(postgres) == [NEWER["title"]]
    quarantined = db_rows(postgres, "SELECT index, raw, reasons->0->>'code' FROM quarantine ORDER BY index")
    assert quarantined == [(0, records[0], "superseded"), (2, records[2], "superseded")]
    assert verdict["deletable_keys"] == ["task-store"]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_newer_duplicate_in_a_later_batch_takes_over_the_earlier_write(
    client, auth, postgres, use_policy, policy
) -> None:
    use_policy(policy)
    headers = auth("alice")
    sid = open_session(client, headers)
    first = put(client, headers, sid, 0, batch_body("task-store", [OLDER])).json
    second = put(client, headers, sid, 1, batch_body("task-store", [NEWER], offset=1)).json
    assert outcomes([first, second]) == ["inserted", "inserted"]  # the row did not exist before the session
    assert titles(postgres) == [NEWER["title"]]
    ledger = db_rows(postgres, "SELECT index, outcome FROM migration_ledger ORDER BY index")
    assert ledger == [(0, "superseded"), (1, "inserted")]
    # The earlier version is rebuilt from the row it wrote, whole.
    assert db_rows(postgres, "SELECT index, raw FROM quarantine") == [(0, OLDER)]
    later = put(client, headers, sid, 2, batch_body("task-store", [SAME_TIME], offset=2)).json
    assert outcomes([later]) == ["superseded"]  # older than the one already written
    verdict = complete(client, headers, sid, {"task-store": [OLDER, NEWER, SAME_TIME]}).json
    assert verdict["counts"]["task-store"] == {"inserted": 1, "superseded": 2}
    assert verdict["deletable_keys"] == ["task-store"]


def test_a_newer_duplicate_over_an_updated_row_keeps_the_pre_image_of_before_the_session(
    client, auth, postgres
) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": [SERVER]}, "seed")
    [seeded] = db_rows(postgres, "SELECT title, source_digest FROM tasks")
    sid = open_session(client, headers, "second")
    newest = NEWER | {"title": "Newest", "updatedAt": "2024-07-01T00:00:00.000Z"}
    put(client, headers, sid, 0, batch_body("task-store", [NEWER]))
    answer = put(client, headers, sid, 1, batch_body("task-store", [newest], offset=1)).json
    assert outcomes([answer]) == ["updated"]
    ledger = db_rows(postgres, "SELECT index, outcome, pre_image FROM migration_ledger WHERE session_id = %s", sid)
    assert [(index, outcome) for index, outcome, _ in ledger] == [(0, "superseded"), (1, "updated")]
    assert (ledger[1][2]["title"], ledger[1][2]["source_digest"]) == seeded
    assert titles(postgres) == ["Newest"]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_foreign_id_gets_its_own_row_and_the_other_users_row_is_untouched(
    client, auth, postgres, use_policy, policy
) -> None:
    use_policy(policy)
    migrate(client, auth("bob"), {"task-store": [SERVER]})
    bobs = db_rows(postgres, "SELECT * FROM tasks WHERE user_id = 'bob'")
    _, answers, _ = migrate(client, auth("alice"), {"task-store": [NEWER]})
    [result] = answers[0]["results"]
    assert result["outcome"] == "inserted"
    assert result["target_id"] != TASK_ID
    assert {"code": "foreign_id", "field": "id"} in result["warnings"]
    assert db_rows(postgres, "SELECT * FROM tasks WHERE user_id = 'bob'") == bobs
    assert db_rows(postgres, "SELECT id::text, title FROM tasks WHERE user_id = 'alice'") == [
        (result["target_id"], NEWER["title"])
    ]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_taken_name_is_numbered_and_the_original_kept(client, auth, postgres, use_policy, policy) -> None:
    use_policy(policy)
    headers = auth("alice")
    migrate(client, headers, {"environments": [{"id": "env-a", "name": "Prod"}]}, "seed")
    records = [{"id": "env-b", "name": "Prod"}, {"id": "env-c", "name": "Prod"}, {"id": "env-d", "name": "Prod (2)"}]
    _, answers, verdict = migrate(client, headers, {"environments": records}, "second")
    assert outcomes(answers) == ["inserted"] * 3
    assert [{"code": "name_taken", "field": "name"} in r["warnings"] for r in answers[0]["results"]] == [
        True,
        True,
        True,
    ]
    rows = db_rows(postgres, "SELECT name, metadata->'original'->>'name' FROM environments ORDER BY name")
    assert rows == [("Prod", None), ("Prod (2)", "Prod"), ("Prod (2) (2)", "Prod (2)"), ("Prod (3)", "Prod")]
    assert verdict["deletable_keys"] == ["environments"]
    again = migrate(client, headers, {"environments": records}, "third")[1]
    assert outcomes(again) == ["unchanged"] * 3  # a renamed row still holds its record's digest


def conflict_setup(client, auth, use_policy) -> tuple[dict[str, str], str, dict[str, Any]]:
    """An environment with a token on the server, a newer local one under `ask`: (headers, sid, the conflict)."""
    use_policy("ask")
    headers = auth("alice")
    server = {"id": "env-1", "name": "Prod", "githubToken": TOKEN, "updatedAt": "2024-05-01T00:00:00.000Z"}
    migrate(client, headers, {"environments": [server]}, "seed")
    local = server | {"description": "edited", "githubToken": TOKEN + "-new", "updatedAt": "2024-06-01T00:00:00.000Z"}
    sid, answers, _ = migrate(client, headers, {"environments": [local]}, "second")
    [result] = answers[0]["results"]
    assert result["outcome"] == "conflict"
    [conflict] = client.get(f"{API}/sessions/{sid}/conflicts", headers=headers).json["conflicts"]
    assert conflict["id"] == result["conflict_id"]
    return headers, sid, conflict


def test_a_conflict_lists_both_versions_with_secrets_masked(client, auth, use_policy) -> None:
    headers, sid, conflict = conflict_setup(client, auth, use_policy)
    assert conflict["status"] == "open"
    assert conflict["local"]["description"] == "edited"
    assert conflict["local"]["githubToken"] == {"$masked": "…-new"}
    assert conflict["server"]["name"] == "Prod"
    assert conflict["server"]["githubToken"] == {"$masked": "…6789"}
    assert "description" not in conflict["server"]
    assert TOKEN not in client.get(f"{API}/sessions/{sid}/conflicts", headers=headers).get_data(as_text=True)


def test_keeping_local_overwrites_the_row_and_frees_the_key(client, auth, postgres, use_policy) -> None:
    headers, sid, conflict = conflict_setup(client, auth, use_policy)
    [before] = db_rows(postgres, "SELECT description, source_digest FROM environments")
    response = client.post(f"{API}/sessions/{sid}/conflicts/{conflict['id']}", json={"keep": "local"}, headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["outcome"] == "updated"
    assert response.json["conflict"]["status"] == "resolved"
    assert db_rows(postgres, "SELECT description FROM environments") == [("edited",)]
    [(outcome, pre_image)] = db_rows(
        postgres, "SELECT outcome, pre_image FROM migration_ledger WHERE session_id = %s", sid
    )
    assert (outcome, pre_image["description"], pre_image["source_digest"]) == ("updated", *before)
    local = conflict_local(postgres)
    verdict = complete(client, headers, sid, {"environments": [local]}).json
    assert verdict["deletable_keys"] == ["environments"]
    again = client.post(f"{API}/sessions/{sid}/conflicts/{conflict['id']}", json={"keep": "local"}, headers=headers)
    assert again.status_code == 200 and again.json == response.json
    other = client.post(f"{API}/sessions/{sid}/conflicts/{conflict['id']}", json={"keep": "server"}, headers=headers)
    assert other.status_code == 409
    assert other.json["error"]["code"] == "conflict_resolved"


def conflict_local(postgres: Any) -> dict[str, Any]:
    """The local record of the one conflict, its token decrypted as the client holds it."""
    [(raw,)] = db_rows(postgres, "SELECT local FROM migration_conflicts")
    return {**raw, "githubToken": TOKEN + "-new"}


def test_keeping_server_quarantines_the_local_record_and_frees_the_key(client, auth, postgres, use_policy) -> None:
    headers, sid, conflict = conflict_setup(client, auth, use_policy)
    before = dump(postgres)
    response = client.post(f"{API}/sessions/{sid}/conflicts/{conflict['id']}", json={"keep": "server"}, headers=headers)
    assert response.json["outcome"] == "kept_server"
    assert dump(postgres) == before
    [(raw, code)] = db_rows(postgres, "SELECT raw, reasons->0->>'code' FROM quarantine")
    assert code == "kept_server"
    assert raw["description"] == "edited" and "$encrypted" in raw["githubToken"]
    [listed] = client.get(f"{API}/sessions/{sid}/quarantine", headers=headers).json["records"]
    assert listed["raw"]["githubToken"] == {"$masked": "…-new"}
    local = conflict_local(postgres)
    assert digest(local) == db_rows(postgres, "SELECT local_digest FROM migration_conflicts")[0][0]
    verdict = complete(client, headers, sid, {"environments": [local]}).json
    assert verdict["deletable_keys"] == ["environments"]
    assert verdict["counts"]["environments"] == {"kept_server": 1}


def test_an_unknown_conflict_is_404_and_a_bad_choice_422(client, auth, use_policy) -> None:
    headers, sid, conflict = conflict_setup(client, auth, use_policy)
    for cid in (str(uuid.uuid4()), "not-a-uuid"):
        response = client.post(f"{API}/sessions/{sid}/conflicts/{cid}", json={"keep": "local"}, headers=headers)
        assert (response.status_code, response.json["error"]["code"]) == (404, "unknown_conflict")
    response = client.post(f"{API}/sessions/{sid}/conflicts/{conflict['id']}", json={"keep": "both"}, headers=headers)
    assert (response.status_code, response.json["error"]["code"]) == (422, "invalid_request")
    bobs = client.get(f"{API}/sessions/{sid}/conflicts", headers=auth("bob"))
    assert (bobs.status_code, bobs.json["error"]["code"]) == (403, "foreign_session")


def test_a_policy_that_does_not_exist_fails_when_the_app_is_built(postgres) -> None:
    with pytest.raises(LookupError, match="CONFLICT_POLICIES\\['tasks'\\] is 'coin_toss'"):
        create_app({"SQLALCHEMY_DATABASE_URI": postgres.url, "DEMO": True, "CONFLICT_POLICIES": {"tasks": "coin_toss"}})


def test_open_conflicts_close_when_their_session_is_rolled_back_or_abandoned(client, auth, postgres, use_policy):
    headers, sid, conflict = conflict_setup(client, auth, use_policy)
    report = client.post(f"{API}/sessions/{sid}/rollback", headers=headers).json
    assert report["conflicts_closed"] == 1
    [closed] = client.get(f"{API}/sessions/{sid}/conflicts", headers=headers).json["conflicts"]
    assert (closed["status"], closed["resolution"]) == ("closed", "rolled_back")
    url = f"{API}/sessions/{sid}/conflicts/{conflict['id']}"
    response = client.post(url, json={"keep": "local"}, headers=headers)
    assert (response.status_code, response.json["error"]["code"]) == (409, "conflict_resolved")

    local = {"id": "env-1", "name": "Prod", "description": "again", "updatedAt": "2024-07-01T00:00:00.000Z"}
    third = open_session(client, headers, "third")
    assert put(client, headers, third, 0, batch_body("environments", [local])).json["counts"] == {"conflict": 1}
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute("UPDATE migration_sessions SET last_active_at = now() - interval '1 day'")
    open_session(client, headers, "fourth")
    assert db_rows(postgres, "SELECT status, resolution FROM migration_conflicts WHERE session_id = %s", third) == [
        ("closed", "abandoned")
    ]


def test_a_dry_run_decides_duplicates_across_batches_like_the_real_run(client, auth, postgres) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": [SERVER]}, "seed")
    batches = [[OLDER, {"id": "new", "title": "first"}], [NEWER, {"id": "new", "title": "second"}]]
    runs = {}
    for name, dry_run in (("preview", True), ("real", False)):
        sid = open_session(client, headers, name, dry_run=dry_run)
        answers = [
            put(client, headers, sid, seq, batch_body("task-store", b, offset=2 * seq)).json
            for seq, b in enumerate(batches)
        ]
        ledger = db_rows(postgres, "SELECT index, outcome FROM migration_ledger WHERE session_id = %s ORDER BY 1", sid)
        runs[name] = (outcomes(answers), ledger)
    assert runs["preview"] == runs["real"]
    assert runs["real"][0] == ["kept_server", "inserted", "updated", "superseded"]
    assert runs["real"][1] == [(0, "superseded"), (1, "inserted"), (2, "updated"), (3, "superseded")]


def test_an_earlier_version_that_cannot_be_rebuilt_any_more_stays_the_winner(client, auth, postgres) -> None:
    headers = auth("alice")
    migrate(client, headers, {"task-store": [SERVER]}, "seed")
    sid = open_session(client, headers, "second")
    assert outcomes([put(client, headers, sid, 0, batch_body("task-store", [SERVER])).json]) == ["unchanged"]
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:  # someone else's write meanwhile
        connection.execute("UPDATE tasks SET title = 'changed', source_digest = %s", ("1" * 64,))
    later = put(client, headers, sid, 1, batch_body("task-store", [NEWER], offset=1)).json
    assert outcomes([later]) == ["superseded"]
    assert db_rows(postgres, "SELECT raw FROM quarantine") == [(NEWER,)]
    assert titles(postgres) == ["changed"]


def test_a_resumed_abandoned_sessions_conflicts_open_again_and_its_key_is_cleaned_up(
    client, auth, postgres, use_policy
) -> None:
    use_policy("ask")
    headers = auth("alice")
    server = {"id": "env-1", "name": "Prod", "updatedAt": "2024-05-01T00:00:00.000Z"}
    migrate(client, headers, {"environments": [server]}, "seed")
    local = server | {"description": "edited", "updatedAt": "2024-06-01T00:00:00.000Z"}
    sid = open_session(client, headers, "tab-1")  # the page closes after its batch, before complete
    [result] = put(client, headers, sid, 0, batch_body("environments", [local])).json["results"]
    assert result["outcome"] == "conflict"
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute("UPDATE migration_sessions SET last_active_at = now() - interval '1 day'")
    other = open_session(client, headers, "tab-2")  # takes over: the idle session is abandoned
    assert db_rows(postgres, "SELECT status FROM migration_conflicts WHERE session_id = %s", sid) == [("closed",)]
    assert client.post(f"{API}/sessions/{other}/rollback", headers=headers).status_code == 200
    assert open_session(client, headers, "tab-1") == sid  # the first tab comes back
    [reopened] = client.get(f"{API}/sessions/{sid}/conflicts", headers=headers).json["conflicts"]
    assert (reopened["status"], reopened["resolution"]) == ("open", None)
    url = f"{API}/sessions/{sid}/conflicts/{result['conflict_id']}"
    assert client.post(url, json={"keep": "local"}, headers=headers).status_code == 200
    verdict = complete(client, headers, sid, {"environments": [local]})
    assert verdict.json["deletable_keys"] == ["environments"], verdict.json
