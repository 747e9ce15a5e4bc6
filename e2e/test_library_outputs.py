"""What the real state libraries write into localStorage (e2e/libraries), in Chromium.

No server: the scenarios' pages are served on an unused origin by `page.route`.
These tests pin the structure that e2e/libraries/OUTPUTS.md documents.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page

from e2e import libraries

pytestmark = pytest.mark.e2e

ORIGIN = "http://127.0.0.1:9"
UUID_TODO = "3f2c9a1e-8b4d-4c6e-9f1a-2b7d5e8c0a13"


def seeded(page: Page, name: str) -> dict[str, str]:
    """localStorage after the scenario `name` seeded it."""
    libraries.load_scenario(page, ORIGIN, name)
    libraries.seed(page)
    return libraries.local_storage(page)


def booted(page: Page, name: str) -> dict[str, str]:
    """localStorage after a fresh page load of `name` booted its stores."""
    libraries.load_scenario(page, ORIGIN, name)
    libraries.boot(page)
    return libraries.local_storage(page)


def redux_persisted(value: str) -> dict[str, Any]:
    """A redux-persist value: a JSON object whose every value is itself JSON text."""
    return {key: json.loads(text) for key, text in json.loads(value).items()}


def test_zustand_persist_writes_state_and_version(page: Page) -> None:
    stored = seeded(page, "zustand")
    assert list(stored) == ["todo-app"]
    envelope = json.loads(stored["todo-app"])
    assert envelope["version"] == 2
    state = envelope["state"]
    assert {todo["id"] for todo in state["todos"]} >= {UUID_TODO, "todo-3", "todo-7"}
    assert state["todos"][0]["dueDate"] == "2025-06-09"
    assert (state["filter"], state["selectedTaskId"], state["composerDraft"]) == (
        "active",
        UUID_TODO,
        "Call the plumber about the",
    )
    assert "addTodo" not in state, "actions are functions, which JSON drops"


def test_redux_persist_writes_each_slice_as_json_text_with_persist_version(page: Page) -> None:
    stored = seeded(page, "redux-persist")
    assert list(stored) == ["persist:root"]
    root = redux_persisted(stored["persist:root"])
    assert root["_persist"] == {"version": 3, "rehydrated": True}
    assert len(root["todos"]["items"]) == 5
    assert root["settings"] == {"theme": "dark", "locale": "de-DE", "notifications": True}


def test_rtk_entity_adapter_keeps_sorted_ids_and_entities_and_a_nested_persist(page: Page) -> None:
    stored = seeded(page, "rtk-entity-adapter")
    assert sorted(stored) == ["persist:rtk", "persist:ui"]
    rtk = redux_persisted(stored["persist:rtk"])
    assert set(rtk) == {"todos", "_persist"}, "the root blacklists the nested ui persist"
    assert rtk["_persist"] == {"version": 1, "rehydrated": True}
    todos = rtk["todos"]
    assert todos["ids"] == [UUID_TODO, "e91d4b70-2c8a-4f16-b3e5-7a0c9d2f6b84", "todo-3", 7, 42]
    assert set(todos["entities"]) == {str(todo_id) for todo_id in todos["ids"]}
    assert todos["entities"]["7"]["id"] == 7 and todos["entities"]["7"]["done"] is True
    assert redux_persisted(stored["persist:ui"]) == {
        "sidebarOpen": True,
        "density": "comfortable",
        "_persist": {"version": -1, "rehydrated": True},
    }


def test_pinia_persistedstate_writes_the_store_state_under_its_id(page: Page) -> None:
    stored = seeded(page, "pinia")
    assert list(stored) == ["todos"]
    state = json.loads(stored["todos"])
    assert set(state) == {"items", "lastSync", "token"}
    assert len(state["items"]) == 5
    assert state["token"] == "secret-token-value-123"


def test_jotai_atom_with_storage_writes_one_json_key_per_atom(page: Page) -> None:
    stored = seeded(page, "jotai")
    assert {key: json.loads(value) for key, value in stored.items() if key != "todos-atom"} == {
        "darkMode": True,
        "userName": "Zoë O'Brien",
        "counter": 42,
        "lastVisit": None,
    }
    assert stored["lastVisit"] == "null"
    assert [todo["id"] for todo in json.loads(stored["todos-atom"])][:2] == [UUID_TODO, "todo-3"]


def test_mobx_persist_store_writes_maps_as_entries_and_mps_only_with_version_or_expiry(page: Page) -> None:
    stored = seeded(page, "mobx")
    assert sorted(stored) == ["SessionStore", "TodoStore"]
    todo_store = json.loads(stored["TodoStore"])
    assert set(todo_store) == {"todos", "projectsById", "filter"}
    assert [key for key, _project in todo_store["projectsById"]] == ["p-home", "p-work"]
    session = json.loads(stored["SessionStore"])
    assert session["lastOpenedProjectId"] == "p-work"
    assert session["__mps__"]["version"] == 2
    assert isinstance(session["__mps__"]["expireInTimestamp"], int)


def test_tanstack_query_writes_the_dehydrated_client_and_a_per_query_key(page: Page) -> None:
    stored = seeded(page, "tanstack-query")
    per_query_key = 'tanstack-query-["todos",{"status":"open"}]'
    assert sorted(stored) == sorted(["REACT_QUERY_OFFLINE_CACHE", per_query_key])
    client = json.loads(stored["REACT_QUERY_OFFLINE_CACHE"])
    assert client["buster"] == "" and isinstance(client["timestamp"], int)
    assert client["clientState"]["mutations"] == []
    queries = {query["queryHash"]: query for query in client["clientState"]["queries"]}
    assert set(queries) == {'["todos"]', '["projects"]', '["user",1]', '["todos",{"status":"open"}]'}
    assert queries['["user",1]']["queryKey"] == ["user", 1]
    assert queries['["todos"]']["state"]["status"] == "success"
    persisted_query = json.loads(stored[per_query_key])
    assert set(persisted_query) == {"state", "queryKey", "queryHash", "buster"}
    assert len(persisted_query["state"]["data"]) == 3


def test_superjson_records_each_type_in_meta(page: Page) -> None:
    stored = seeded(page, "superjson")
    assert list(stored) == ["superjson-state"]
    document = json.loads(stored["superjson-state"])
    state = document["json"]["state"]
    assert state["todosById"][0][0] == UUID_TODO
    assert state["syncCursor"] == "9007199254740993"
    assert state["pendingDeletion"] is None
    values = document["meta"]["values"]
    assert values["state.todosById"][0] == "map"
    assert values["state.todosById"][1]["0.1.updatedAt"] == ["Date"]
    assert values["state.tags"] == ["set"]
    assert values["state.lastSyncedAt"] == ["Date"]
    assert values["state.syncCursor"] == ["bigint"]
    assert values["state.pendingDeletion"] == ["undefined"]


# What a first boot, on an empty localStorage, persists: only some libraries write their initial state.
FIRST_BOOT_KEYS = [
    ("zustand", []),
    ("redux-persist", ["persist:root"]),
    ("rtk-entity-adapter", ["persist:rtk", "persist:ui"]),
    ("pinia", []),
    ("jotai", []),
    ("mobx", ["SessionStore", "TodoStore"]),
    ("tanstack-query", []),
    ("superjson", []),
]


@pytest.mark.parametrize(("name", "keys"), FIRST_BOOT_KEYS)
def test_a_first_boot_persists_only_some_libraries_initial_state(page: Page, name: str, keys: list[str]) -> None:
    assert sorted(booted(page, name)) == keys


@pytest.mark.parametrize("name", libraries.SCENARIOS)
def test_a_boot_after_seeding_keeps_the_stored_values(page: Page, name: str) -> None:
    before = seeded(page, name)
    after = booted(page, name)
    if name == "mobx":
        # The expiry is recomputed on every save, and a boot saves.
        before.pop("SessionStore")
        assert json.loads(after.pop("SessionStore"))["lastOpenedProjectId"] == "p-work"
    assert after == before
