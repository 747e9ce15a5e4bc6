"""Whole keys on real PostgreSQL (design §11): several stores in one key, every shape, the remainder kept
(encrypted) and proven at `complete`, the key given back by GET /keys/{key}, cleanup that strips in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask

from lsmigrate.shared.canonical import canonical_json, digest
from lsmigrate.shared.catalog import load_catalog
from lsmigrate.shared.keys import split_key
from tests.migration_helpers import API, db_rows, open_session
from tests.runner_helpers import FakeLocalStorage, client_sender, run

CATALOG = {
    "stores": [
        {"name": "todos", "key": "persist:root", "envelope": "redux-persist", "path": "todos.items", "version": 3},
        {
            "name": "settings", "key": "persist:root", "envelope": "redux-persist", "path": "settings",
            "shape": "one", "version": 3,
        },
        {
            "name": "people", "key": "persist:rtk", "envelope": "redux-persist", "path": "people",
            "shape": "entity_adapter",
        },
        {"name": "dark", "key": "darkMode", "envelope": "bare", "shape": "scalar"},
        {"name": "session", "key": "SessionStore", "envelope": "mobx-persist-store", "shape": "one", "version": 2},
        {"name": "byid", "key": "by-id", "envelope": "bare", "path": "items", "shape": "by_id"},
        {
            "name": "projects", "key": "projects-map", "envelope": "mobx-persist-store", "path": "projectsById",
            "shape": "entries",
        },
        {
            "name": "queries", "key": "REACT_QUERY_OFFLINE_CACHE", "envelope": "tanstack-query",
            "path": 'clientState.queries[queryKey=["todos"]].state.data',
        },
    ]
}  # fmt: skip
TODOS = [
    {"id": "t1", "title": "One", "updatedAt": "2025-01-01T00:00:00.000Z"},
    {"id": "t2", "title": "Two", "updatedAt": "2025-01-02T00:00:00.000Z"},
]


def js(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def persisted(slices: dict[str, Any]) -> str:
    return js({name: js(value) for name, value in slices.items()})


ITEMS = {
    "persist:root": persisted(
        {
            "todos": {"items": TODOS, "filter": "active"},
            "settings": {"theme": "dark", "locale": "de-DE"},
            "composer": {"draft": "half-written"},
            "_persist": {"version": 3, "rehydrated": True},
        }
    ),
    "persist:rtk": persisted(
        {
            "people": {"ids": ["b", 7], "entities": {"7": {"id": 7, "name": "Seven"}, "b": {"id": "b", "name": "Bee"}}},
            "_persist": {"version": -1, "rehydrated": True},
        }
    ),
    "darkMode": "true",
    "SessionStore": js(
        {"lastOpenedProjectId": "p-work", "__mps__": {"expireInTimestamp": 1796594027278, "version": 2}}
    ),
    "by-id": js({"items": {"x": {"id": "x", "n": 1}, "y": {"id": "y", "n": 2}}, "cursor": 9}),
    "projects-map": js({"projectsById": [["p1", {"id": "p1", "name": "Home"}]], "filter": "all"}),
    "REACT_QUERY_OFFLINE_CACHE": js(
        {
            "buster": "",
            "timestamp": 1,
            "clientState": {
                "mutations": [],
                "queries": [{"queryKey": ["todos"], "queryHash": '["todos"]', "state": {"data": TODOS}}],
            },
        }
    ),
    "theme": "light",  # no store's: reported, never touched
}


@pytest.fixture
def catalog_file(tmp_path: Path) -> str:
    path = tmp_path / "stores.json"
    path.write_text(json.dumps(CATALOG))
    return str(path)


@pytest.fixture
def keys_app(make_app, catalog_file) -> Flask:
    app: Flask = make_app(None, DEMO=False, STORES=catalog_file)
    return app


def migrate(app: Flask, auth, catalog_file: str, items: dict[str, str], user: str = "alice") -> dict[str, Any]:
    storage = FakeLocalStorage(items)
    report = run(storage, client_sender(app.test_client(), auth(user)), catalog=load_catalog(catalog_file))
    assert report["state"] == "done", report.get("error")
    report["storage"] = storage.items
    return report


def held(app: Flask, auth, key: str, user: str = "alice") -> Any:
    return app.test_client().get(f"{API}/keys/{quote(key, safe='')}", headers=auth(user))


def test_every_key_is_migrated_whole_given_back_and_stripped_in_place(keys_app, auth, catalog_file, postgres) -> None:
    report = migrate(keys_app, auth, catalog_file, ITEMS)
    assert report["errors"] == [] and report["unknown_keys"] == ["theme"]
    counts = dict(db_rows(postgres, "SELECT store, count(*) FROM migrated_records GROUP BY store"))
    assert counts == {
        "todos": 2, "settings": 1, "people": 2, "dark": 1, "session": 1, "byid": 2, "projects": 1, "queries": 2,
    }  # fmt: skip
    # A whole mobx-persist-store object is the record; its __mps__ entry (an expiry renewed on every save) is not.
    [(session,)] = db_rows(postgres, "SELECT data FROM migrated_records WHERE store = 'session'")
    assert session == {"lastOpenedProjectId": "p-work"}
    assert report["keys"]["persist:root"]["stores"] == {"todos": 2, "settings": 1}
    # The server gives every key back, JSON-equal to what localStorage held.
    for key, raw in ITEMS.items():
        if key == "theme":
            continue
        answer = held(keys_app, auth, key)
        assert answer.status_code == 200, answer.json
        assert answer.json["as_verified"] is True
        stores = load_catalog(catalog_file).stores_for_key(key)
        expected = split_key(key, raw, stores).tree
        assert canonical_json(stores[0].envelope.read(answer.json["value"])) == canonical_json(expected), key
    listed = keys_app.test_client().get(f"{API}/keys", headers=auth("alice")).json["keys"]
    assert sorted(entry["key"] for entry in listed) == sorted(set(ITEMS) - {"theme"})
    # The remainder is kept encrypted: nothing of the app's unclaimed state in clear.
    stored = db_rows(postgres, "SELECT document::text FROM migration_remainders")
    assert len(stored) == 7 and not any("half-written" in text or "active" in text for (text,) in stored)
    # Cleanup: containers emptied in place, documents left, whole-key records deleted, other keys untouched.
    left = report["storage"]
    assert left["theme"] == "light"
    assert left["darkMode"] == "true"  # a document stays (the app's live state); its store could say delete
    assert report["keys"]["darkMode"]["kept"] == {"reason": "documents_stay"}
    assert left["persist:root"] == persisted(
        {
            "todos": {"items": [], "filter": "active"},
            "settings": {"theme": "dark", "locale": "de-DE"},
            "composer": {"draft": "half-written"},
            "_persist": {"version": 3, "rehydrated": True},
        }
    )
    assert json.loads(json.loads(left["persist:rtk"])["people"]) == {"ids": [], "entities": {}}
    assert left["by-id"] == js({"items": {}, "cursor": 9})
    assert left["projects-map"] == js({"projectsById": [], "filter": "all"})
    assert json.loads(left["REACT_QUERY_OFFLINE_CACHE"])["clientState"]["queries"][0]["state"] == {"data": []}


def test_a_second_run_of_what_cleanup_left_migrates_nothing_new(keys_app, auth, catalog_file, postgres) -> None:
    first = migrate(keys_app, auth, catalog_file, ITEMS)
    again = migrate(keys_app, auth, catalog_file, first["storage"])
    # Only the documents are there to read again, and they are unchanged.
    assert {key: entry["found"] for key, entry in again["keys"].items()} == {
        "darkMode": 1,
        "SessionStore": 1,
        "persist:root": 1,
        "persist:rtk": 0,
        "by-id": 0,
        "projects-map": 0,
        "REACT_QUERY_OFFLINE_CACHE": 0,
    }
    assert again["keys"]["persist:root"]["unchanged"] == 1
    assert dict(db_rows(postgres, "SELECT store, count(*) FROM migrated_records GROUP BY store"))["todos"] == 2
    # The key's latest verified value is the stripped one now.
    answer = held(keys_app, auth, "persist:rtk")
    assert json.loads(json.loads(answer.json["value"])["people"]) == {"ids": [], "entities": {}}


def test_a_row_changed_since_is_given_back_as_it_is_now(keys_app, auth, catalog_file, postgres) -> None:
    migrate(keys_app, auth, catalog_file, {"by-id": ITEMS["by-id"]})
    edit = "UPDATE migrated_records SET data = jsonb_set(data, '{n}', '5') WHERE record_id = 'x' RETURNING 1"
    db_rows(postgres, edit)
    answer = held(keys_app, auth, "by-id")
    assert answer.json["as_verified"] is False
    assert json.loads(answer.json["value"])["items"]["x"] == {"id": "x", "n": 5}


def test_keys_are_the_users_own_and_a_rolled_back_session_gives_none_back(keys_app, auth, catalog_file) -> None:
    report = migrate(keys_app, auth, catalog_file, {"darkMode": "true"})
    assert held(keys_app, auth, "darkMode", "bob").status_code == 404
    assert keys_app.test_client().get(f"{API}/keys", headers=auth("bob")).json == {"keys": []}
    client = keys_app.test_client()
    assert client.post(f"{API}/sessions/{report['session_id']}/rollback", headers=auth("alice")).status_code == 200
    missing = held(keys_app, auth, "darkMode")
    assert (missing.status_code, missing.json["error"]["code"]) == (404, "unknown_key")


def test_a_dry_run_keeps_remainders_but_gives_no_key_back(keys_app, auth, catalog_file) -> None:
    report = run(
        FakeLocalStorage({"darkMode": "false"}),
        client_sender(keys_app.test_client(), auth("alice")),
        catalog=load_catalog(catalog_file),
        dry_run=True,
    )
    assert report["state"] == "done"
    assert held(keys_app, auth, "darkMode").status_code == 404


def _remainder_of(catalog_file: str, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    stores = load_catalog(catalog_file).stores_for_key(key)
    split = split_key(key, ITEMS[key], stores)
    digests = [digest(record) for records in split.records.values() for record in records]
    return split.remainder, split.manifest(digests)


def test_remainders_are_checked_idempotent_and_required(keys_app, auth, catalog_file) -> None:
    client, headers = keys_app.test_client(), auth("alice")
    sid = open_session(client, headers)
    remainder, manifest = _remainder_of(catalog_file, "darkMode")
    body = {
        "key": "darkMode",
        "offset": 0,
        "store": "dark",
        "records": [{"value": True}],
        "digests": [digest({"value": True})],
    }
    assert client.put(f"{API}/sessions/{sid}/batches/0", json=body, headers=headers).status_code == 200
    url = f"{API}/sessions/{sid}/remainders"

    def refused(answer: Any) -> tuple[int, str]:
        return answer.status_code, answer.json["error"]["code"]

    complete = {"manifest": {"darkMode": manifest}}
    missing = client.post(f"{API}/sessions/{sid}/complete", json=complete, headers=headers)
    assert refused(missing) == (409, "manifest_mismatch")
    assert missing.json["error"]["details"]["mismatches"] == [{"key": "darkMode", "problem": "remainder_missing"}]
    assert refused(client.put(url, json={"key": "theme", "remainder": remainder}, headers=headers)) == (
        422,
        "unknown_store",
    )
    wrong_parts = {**remainder, "parts": {"other": {"absent": True}}}
    assert refused(client.put(url, json={"key": "darkMode", "remainder": wrong_parts}, headers=headers)) == (
        422,
        "invalid_remainder",
    )
    assert refused(client.put(url, json={"key": "darkMode"}, headers=headers)) == (422, "invalid_request")
    assert client.put(url, json={"key": "darkMode", "remainder": remainder}, headers=headers).status_code == 200
    assert client.put(url, json={"key": "darkMode", "remainder": remainder}, headers=headers).status_code == 200
    other = {**remainder, "tree": {"changed": True}}
    assert refused(client.put(url, json={"key": "darkMode", "remainder": other}, headers=headers)) == (
        409,
        "remainder_mismatch",
    )
    forged = {"manifest": {"darkMode": {**manifest, "value": "0" * 64}}}
    wrong = client.post(f"{API}/sessions/{sid}/complete", json=forged, headers=headers)
    assert wrong.json["error"]["details"]["mismatches"] == [{"key": "darkMode", "problem": "value"}]
    verdict = client.post(f"{API}/sessions/{sid}/complete", json=complete, headers=headers)
    assert verdict.status_code == 200 and verdict.json["cleanup"] == {"darkMode": "strip"}


def test_a_batch_of_a_key_with_several_stores_names_its_store(keys_app, auth) -> None:
    client, headers = keys_app.test_client(), auth("alice")
    sid = open_session(client, headers)
    body = {"key": "persist:root", "offset": 0, "records": [TODOS[0]], "digests": [digest(TODOS[0])]}
    answer = client.put(f"{API}/sessions/{sid}/batches/0", json=body, headers=headers)
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "store_required")
    answer = client.put(f"{API}/sessions/{sid}/batches/0", json={**body, "store": "nope"}, headers=headers)
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "unknown_store")
    assert (
        client.put(f"{API}/sessions/{sid}/batches/0", json={**body, "store": "todos"}, headers=headers).status_code
        == 200
    )


def test_a_record_whose_row_is_gone_before_complete_is_not_verified_and_its_key_stays(
    keys_app, auth, catalog_file, postgres
) -> None:
    def lose_a_row(method: str, path: str) -> None:
        if path.endswith("/complete"):
            db_rows(postgres, "DELETE FROM migrated_records WHERE record_id = 'y' RETURNING 1")

    storage = FakeLocalStorage({"by-id": ITEMS["by-id"]})
    sender = client_sender(keys_app.test_client(), auth("alice"), lose_a_row)
    report = run(storage, sender, catalog=load_catalog(catalog_file))
    assert report["state"] == "failed"
    assert report["error"]["code"] == "manifest_mismatch"
    assert report["error"]["details"]["mismatches"] == [{"key": "by-id", "problem": "records_not_held", "indexes": [1]}]
    assert storage.items == {"by-id": ITEMS["by-id"]}  # nothing cleaned up


def test_keys_the_loader_found_settled_stay_out_of_the_run_and_the_server_keeps_their_records(
    keys_app, auth, catalog_file
) -> None:
    first = migrate(keys_app, auth, catalog_file, {"by-id": ITEMS["by-id"], "darkMode": "true"})
    storage = FakeLocalStorage({**first["storage"], "darkMode": "false"})  # the app changed a document
    sender = client_sender(keys_app.test_client(), auth("alice"))
    report = run(storage, sender, catalog=load_catalog(catalog_file), settled_keys=frozenset({"by-id"}))
    assert report["state"] == "done" and sorted(report["keys"]) == ["darkMode"]
    # by-id was stripped by the first run and holds nothing new: the server's copy still holds its records.
    assert json.loads(held(keys_app, auth, "by-id").json["value"])["items"] == {
        "x": {"id": "x", "n": 1},
        "y": {"id": "y", "n": 2},
    }
    assert held(keys_app, auth, "darkMode").json["value"] == "false"


def test_a_key_whose_row_is_gone_since_is_a_clear_409(keys_app, auth, catalog_file, postgres) -> None:
    migrate(keys_app, auth, catalog_file, {"by-id": ITEMS["by-id"]})
    db_rows(postgres, "DELETE FROM migrated_records WHERE record_id = 'x' RETURNING 1")
    answer = held(keys_app, auth, "by-id")
    assert (answer.status_code, answer.json["error"]["code"]) == (409, "key_unrebuildable")
