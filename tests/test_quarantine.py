"""The quarantine: raw values kept whole, secrets encrypted and masked, text PostgreSQL cannot store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.migration_helpers import API, TOKEN, batch_body, db_rows, migrate, open_session, put

DRAFT_KEY = "react-hook-form-task-form"

UNSTORABLE = {
    "task-store": [
        {"id": "t-nul", "title": "NUL\u0000inside"},
        {"id": "t-surrogate", "title": "fine", "description": "lone \udc80 surrogate"},
        {"id": "id\u0000with-nul", "title": "fine"},
        {"id": "t-deep", "title": "fine", "messages": [{"role": "user", "data": {"k\u0000": "v"}}]},
        {"title": {"not": "text"}, "junk": "\ud800"},  # refused by the mapping, and unstorable too
        {"id": "t-ok", "title": "A backslash-u0000 is only text: \\u0000"},
    ],
    "environments": [{"id": "e-1", "name": "Prod\u0000", "githubToken": TOKEN + "\udc80"}],
    DRAFT_KEY: [{"title": "draft \u0000"}],
    "user-preferences": [{"theme": "\ud83d"}],
}


def test_text_postgresql_cannot_store_is_quarantined_losslessly_in_every_store(client, auth, postgres) -> None:
    headers = auth("alice")
    sid, answers, verdict = migrate(client, headers, UNSTORABLE)
    outcomes = {answer["key"]: [r["outcome"] for r in answer["results"]] for answer in answers}
    assert outcomes == {
        "task-store": ["quarantined"] * 5 + ["inserted"],
        "environments": ["quarantined"],
        DRAFT_KEY: ["quarantined"],
        "user-preferences": ["quarantined"],
    }
    assert answers[0]["results"][0]["reasons"] == [
        {"code": "unstorable_text", "field": "", "message": "holds NUL or a lone surrogate, which no column stores"}
    ]
    assert [r["code"] for r in answers[0]["results"][4]["reasons"]] == ["wrong_type", "unstorable_text"]
    # Each key holds a quarantined record: a key whose store strips (the default) stays whole; the demo's draft
    # and preferences stores say delete (the server holds every byte of them).
    assert verdict["deletable_keys"] == [DRAFT_KEY, "user-preferences"]
    assert {key: kept["reason"] for key, kept in verdict["kept_keys"].items()} == {
        "environments": "quarantined_records",
        "task-store": "quarantined_records",
    }
    assert db_rows(postgres, "SELECT title FROM tasks") == [(UNSTORABLE["task-store"][5]["title"],)]
    # Listed back exactly as sent (the token masked).
    listed = client.get(f"{API}/sessions/{sid}/quarantine", headers=headers).json["records"]
    by_place = {(record["key"], record["index"]): record["raw"] for record in listed}
    for key, records in UNSTORABLE.items():
        for index, record in enumerate(records):
            if key == "environments":
                record = record | {"githubToken": {"$masked": "…789\udc80"}}
            if (key, index) != ("task-store", 5):
                assert by_place[(key, index)] == record
    [(source_id,)] = db_rows(postgres, "SELECT source_id FROM migration_ledger WHERE index = 2 AND key = 'task-store'")
    assert json.loads(source_id["$json"]) == "id\u0000with-nul"
    bad_key = put(client, headers, open_session(client, headers, "2"), 0, batch_body("form-\u0000", [{}]))
    assert (bad_key.status_code, bad_key.json["error"]["code"]) == (422, "invalid_request")


def test_the_quarantine_lists_every_kind_with_its_raw_value_and_the_token_masked(client, auth) -> None:
    headers = auth("alice")
    seeded = {"id": "env-1", "name": "Prod", "updatedAt": "2024-03-01T00:00:00.000Z"}
    migrate(client, headers, {"environments": [seeded]}, "seed")
    records = [
        {"id": "env-2", "name": ["not", "a", "name"], "githubToken": TOKEN},  # quarantined
        seeded | {"description": "older", "updatedAt": "2024-01-01T00:00:00.000Z"},  # kept_server
        {"id": "env-3", "name": "B", "githubToken": TOKEN, "updatedAt": "2024-01-01T00:00:00.000Z"},  # superseded
        {"id": "env-3", "name": "B", "githubToken": TOKEN, "updatedAt": "2024-02-01T00:00:00.000Z"},
    ]
    sid, answers, _ = migrate(client, headers, {"environments": records}, "second")
    assert [r["outcome"] for r in answers[0]["results"]] == ["quarantined", "kept_server", "superseded", "inserted"]
    response = client.get(f"{API}/sessions/{sid}/quarantine", headers=headers)
    masked = {"$masked": "…6789"}
    listed = [(r["index"], [reason["code"] for reason in r["reasons"]], r["raw"]) for r in response.json["records"]]
    assert listed == [
        (0, ["wrong_type"], records[0] | {"githubToken": masked}),
        (1, ["kept_server"], records[1]),
        (2, ["superseded"], records[2] | {"githubToken": masked}),
    ]
    assert [r["target_id"] is None for r in response.json["records"]] == [True, False, False]
    assert TOKEN not in response.get_data(as_text=True)
    other = client.get(f"{API}/sessions/{sid}/quarantine", headers=auth("bob"))
    assert (other.status_code, other.json["error"]["code"]) == (403, "foreign_session")


def test_a_secret_the_mapping_refuses_is_encrypted_too_whatever_its_json_type(client, auth, postgres) -> None:
    headers = auth("alice")
    records = [{"id": "env-1", "name": "Prod", "githubToken": {"value": TOKEN}}, {"id": "env-2", "githubToken": 7}]
    sid, answers, _ = migrate(client, headers, {"environments": records})
    assert [r["outcome"] for r in answers[0]["results"]] == ["quarantined", "quarantined"]
    stored = db_rows(postgres, "SELECT raw FROM quarantine ORDER BY index")
    assert TOKEN not in json.dumps(stored)
    assert [set(raw["githubToken"]) for (raw,) in stored] == [{"$encrypted_json"}, {"$encrypted_json"}]
    listed = client.get(f"{API}/sessions/{sid}/quarantine", headers=headers).json["records"]
    assert [record["raw"] for record in listed] == [record | {"githubToken": {"$masked": "…"}} for record in records]


def _nested(depth: int, bottom: Any) -> Any:
    """`bottom` inside `depth` levels of arrays and objects, alternating (built without recursion)."""
    value = bottom
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# The page reads a key nested up to 512 levels (shared.envelopes.MAX_DEPTH); a Zustand key's record sits 3 levels in.
DEEP = 508


@pytest.mark.parametrize(
    ("key", "record"),
    [
        ("task-store", {"id": "t-deep-nul", "title": "fine", "messages": _nested(DEEP - 2, "NUL\u0000")}),
        ("task-store", {"id": "t-deep-key", "title": "fine", "messages": _nested(DEEP - 2, {"k\u0000": 1})}),
        ("task-store", {"id": "t-deep-lone", "title": "fine", "messages": _nested(DEEP - 2, "cut \ud83d")}),
        ("task-store", {"id": "t-deep-text", "title": "fine", "messages": _nested(DEEP - 2, "only text: \\u0000")}),
        (DRAFT_KEY, {"title": "draft", "deep": _nested(DEEP, "NUL\u0000")}),
    ],
    ids=["nul", "nul-in-a-name", "lone-surrogate", "escaped-text", "document"],
)
def test_a_record_nested_as_deep_as_the_page_allows_is_scanned_for_unstorable_text(
    client, auth, postgres, key: str, record: Any
) -> None:
    headers = auth("alice")
    sid, answers, verdict = migrate(client, headers, {key: [record]})
    [result] = answers[0]["results"]
    if record.get("id") == "t-deep-text":
        assert result["outcome"] == "inserted"
    else:
        assert result["outcome"] == "quarantined"
        assert [reason["code"] for reason in result["reasons"]] == ["unstorable_text"]
        [listed] = client.get(f"{API}/sessions/{sid}/quarantine", headers=headers).json["records"]
        assert listed["raw"] == record  # kept whole, every level of it
    assert set(verdict["counts"][key]) == {result["outcome"]}  # verified: every record accounted for
