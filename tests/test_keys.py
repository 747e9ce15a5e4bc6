"""A whole key: split into stores' records and a remainder, rebuilt exactly, stripped in place (design §11)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lsmigrate.shared.canonical import canonical_json, digest
from lsmigrate.shared.envelopes import (
    BARE,
    MOBX_PERSIST_STORE,
    REDUX_PERSIST,
    SUPERJSON,
    TANSTACK_QUERY,
    ZUSTAND,
    Envelope,
    SourceError,
)
from lsmigrate.shared.keys import (
    cleanup_action,
    rebuild_key,
    rebuild_text,
    split_key,
    strip_edits,
    strip_text,
)
from lsmigrate.shared.paths import PathError, Select, parse_path
from lsmigrate.shared.stores import StoreCatalog, StoreSpec

TODOS = [{"id": "a", "title": "A"}, {"id": 7, "title": "B"}]


def js(value: Any) -> str:
    """JSON as JSON.stringify writes it (key order kept, compact)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def persisted(slices: dict[str, Any]) -> str:
    """A redux-persist value: each slice JSON text again."""
    return js({name: js(value) for name, value in slices.items()})


def test_paths_parse_names_and_selections() -> None:
    assert parse_path("") == ()
    assert parse_path("todos.items") == ("todos", "items")
    assert parse_path('clientState.queries[queryKey=["todos"]].state.data') == (
        "clientState",
        "queries",
        Select("queryKey", ["todos"]),
        "state",
        "data",
    )
    for bad in ("a..b", "a.", ".a", "a[b]", "a[b=nope]", 'a[b="x"', "a[=1]"):
        with pytest.raises(PathError):
            parse_path(bad)


def test_redux_persist_slices_are_two_stores_and_the_rest_is_the_remainder() -> None:
    todos = StoreSpec(name="todos", key="persist:root", envelope=REDUX_PERSIST, records_path="todos.items", version=3)
    settings = StoreSpec(
        name="settings", key="persist:root", envelope=REDUX_PERSIST, records_path="settings", shape="one",
        id_field=None, timestamp_field=None, version=3,
    )  # fmt: skip
    catalog = StoreCatalog([todos, settings])
    raw = persisted(
        {
            "todos": {"items": TODOS, "filter": "all"},
            "settings": {"theme": "dark"},
            "session": {"token": "t"},
            "_persist": {"version": 3, "rehydrated": True},
        }
    )
    split = split_key("persist:root", raw, catalog.stores_for_key("persist:root"))
    assert split.records == {"todos": TODOS, "settings": [{"theme": "dark"}]}
    assert split.version == 3 and split.warnings == []
    assert split.remainder["tree"] == {
        "todos": {"items": [], "filter": "all"},
        "settings": None,
        "session": {"token": "t"},
        "_persist": {"version": 3, "rehydrated": True},
    }
    assert canonical_json(rebuild_key(split.records, split.remainder)) == canonical_json(REDUX_PERSIST.read(raw))
    # Strip: the todos emptied, the settings (a document) and every other byte left as they were.
    edits = strip_edits(split, catalog.stores_for_key("persist:root"))
    stripped = strip_text(raw, REDUX_PERSIST, edits)
    assert stripped == persisted(
        {
            "todos": {"items": [], "filter": "all"},
            "settings": {"theme": "dark"},
            "session": {"token": "t"},
            "_persist": {"version": 3, "rehydrated": True},
        }
    )


def test_two_stores_claiming_one_part_of_a_key_are_refused_naming_both() -> None:
    first = StoreSpec(name="todos", key="k", records_path="todos")
    inside = StoreSpec(name="items", key="k", records_path="todos.items")
    with pytest.raises(ValueError, match="stores 'todos' and 'items' both claim 'todos' of key 'k'"):
        StoreCatalog([first, inside])
    other = StoreSpec(name="other", key="k", records_path="done", envelope=BARE)
    with pytest.raises(ValueError, match="share key 'k' but not its envelope"):
        StoreCatalog([first, other])


@pytest.mark.parametrize(
    ("shape", "container", "records"),
    [
        ("array", TODOS, TODOS),
        ("by_id", {"a": TODOS[0], "7": TODOS[1]}, TODOS),
        ("entries", [["a", TODOS[0]], [7, TODOS[1]]], TODOS),
        ("one", {"theme": "dark"}, [{"theme": "dark"}]),
        ("scalar", True, [{"value": True}]),
        ("scalar", None, [{"value": None}]),
    ],
)
def test_every_shape_splits_and_rebuilds(shape: str, container: Any, records: list[Any]) -> None:
    spec = StoreSpec(name="s", key="k", records_path="part", shape=shape)
    raw = js({"state": {"part": container, "other": 1}, "version": 0})
    split = split_key("k", raw, [spec])
    assert split.records["s"] == records
    assert rebuild_text(ZUSTAND, split.records, split.remainder) == canonical_json(json.loads(raw))


def test_an_entity_adapter_gives_its_records_in_ids_order_and_keeps_both_orders() -> None:
    adapter = {
        "ids": ["b", 7, "a"],
        "entities": {"7": {"id": 7}, "a": {"id": "a"}, "b": {"id": "b"}},
        "status": "idle",
    }
    spec = StoreSpec(
        name="todos", key="persist:rtk", envelope=REDUX_PERSIST, records_path="todos", shape="entity_adapter"
    )
    raw = persisted({"todos": adapter, "_persist": {"version": 0, "rehydrated": True}})
    split = split_key("persist:rtk", raw, [spec])
    assert split.records["todos"] == [{"id": "b"}, {"id": 7}, {"id": "a"}]
    rebuilt = rebuild_key(split.records, split.remainder)
    assert js(rebuilt["todos"]) == js(adapter)  # the entities' own order too
    stripped = strip_text(raw, REDUX_PERSIST, strip_edits(split, [spec]))
    assert json.loads(json.loads(stripped)["todos"]) == {"ids": [], "entities": {}, "status": "idle"}


def test_a_selection_inside_an_array_finds_a_tanstack_query_and_a_missing_one_holds_nothing() -> None:
    client = {
        "buster": "",
        "timestamp": 1,
        "clientState": {
            "mutations": [],
            "queries": [
                {"queryKey": ["projects"], "state": {"data": [{"id": "p"}]}},
                {"queryKey": ["todos"], "state": {"data": TODOS, "status": "success"}},
            ],
        },
    }
    todos = StoreSpec(
        name="todos", key="REACT_QUERY_OFFLINE_CACHE", envelope=TANSTACK_QUERY,
        records_path='clientState.queries[queryKey=["todos"]].state.data',
    )  # fmt: skip
    users = StoreSpec(
        name="users", key="REACT_QUERY_OFFLINE_CACHE", envelope=TANSTACK_QUERY,
        records_path='clientState.queries[queryKey=["users"]].state.data',
    )  # fmt: skip
    raw = js(client)
    split = split_key("REACT_QUERY_OFFLINE_CACHE", raw, [todos, users])
    assert split.records == {"todos": TODOS, "users": []}
    assert split.remainder["parts"]["users"] == {"absent": True}
    assert canonical_json(rebuild_key(split.records, split.remainder)) == canonical_json(client)
    stripped = json.loads(strip_text(raw, TANSTACK_QUERY, strip_edits(split, [todos, users])))
    assert stripped["clientState"]["queries"][1] == {"queryKey": ["todos"], "state": {"data": [], "status": "success"}}
    assert stripped["clientState"]["queries"][0] == client["clientState"]["queries"][0]


def test_superjson_types_stay_in_meta_and_an_emptied_map_loses_only_its_entries_annotations() -> None:
    value = {
        "json": {
            "state": {"todosById": [["a", {"id": "a", "at": "2025-01-01T00:00:00.000Z"}]], "tags": ["x"]},
            "version": 0,
        },
        "meta": {
            "values": {
                "state.todosById": ["map", {"0.1.at": ["Date"]}],
                "state.tags": ["set"],
            },
            "v": 1,
        },
    }
    spec = StoreSpec(
        name="todos", key="superjson-state", envelope=SUPERJSON, records_path="state.todosById", shape="entries",
        version_path=("json", "version"),
    )  # fmt: skip
    raw = js(value)
    split = split_key("superjson-state", raw, [spec])
    assert split.records["todos"] == [{"id": "a", "at": "2025-01-01T00:00:00.000Z"}]
    assert split.remainder["tree"]["meta"] == value["meta"]
    assert canonical_json(rebuild_key(split.records, split.remainder)) == canonical_json(value)
    stripped = json.loads(strip_text(raw, SUPERJSON, strip_edits(split, [spec])))
    assert stripped["json"]["state"] == {"todosById": [], "tags": ["x"]}
    assert stripped["meta"]["values"] == {"state.todosById": ["map"], "state.tags": ["set"]}


def test_mobx_persist_store_reads_its_version_from_its_marker() -> None:
    spec = StoreSpec(name="session", key="SessionStore", envelope=MOBX_PERSIST_STORE, shape="one", version=2,
                     id_field=None, timestamp_field=None)  # fmt: skip
    raw = js({"lastOpenedProjectId": "p", "__mps__": {"expireInTimestamp": 1, "version": 2}})
    split = split_key("SessionStore", raw, [spec])
    assert split.version == 2 and split.warnings == []
    assert split.records["session"] == [{"lastOpenedProjectId": "p"}]
    assert strip_edits(split, [spec]) == []  # a document stays; cleanup "delete" removes the key
    # Its expiry is the library's bookkeeping, not the record: a new expiry is no new record.
    assert split.remainder["tree"] == {"__mps__": {"expireInTimestamp": 1, "version": 2}}
    renewed = js({"lastOpenedProjectId": "p", "__mps__": {"expireInTimestamp": 2, "version": 2}})
    assert split_key("SessionStore", renewed, [spec]).records == split.records
    assert canonical_json(rebuild_key(split.records, split.remainder)) == canonical_json(json.loads(raw))
    assert split.manifest([digest(record) for record in split.records["session"]])["count"] == 1


def test_a_key_wholly_one_document_stays_under_strip_and_a_bare_array_is_emptied() -> None:
    spec = StoreSpec(name="darkMode", key="darkMode", envelope=BARE, shape="scalar", id_field=None)
    split = split_key("darkMode", "true", [spec])
    assert split.records["darkMode"] == [{"value": True}]
    assert strip_edits(split, [spec]) == []
    todos = StoreSpec(name="todos", key="todos-atom", envelope=BARE)
    split = split_key("todos-atom", js(TODOS), [todos])
    assert strip_text(js(TODOS), BARE, strip_edits(split, [todos])) == "[]"


def test_strip_leaves_every_other_byte_as_the_app_wrote_it() -> None:
    raw = '{"state":{"filter":"active","tasks":[{"id":"a","n":1.50}],"draft":"é \\u2028"},"version":0}'
    spec = StoreSpec(name="tasks", key="task-store", records_path="tasks")
    split = split_key("task-store", raw, [spec])
    assert strip_text(raw, ZUSTAND, strip_edits(split, [spec])) == (
        '{"state":{"filter":"active","tasks":[],"draft":"é \\u2028"},"version":0}'
    )


def test_an_envelope_of_the_apps_own_reads_and_writes_its_text() -> None:
    def read(text: str) -> Any:
        prefix, _, body = text.partition(":")
        if prefix != "v1":
            raise ValueError("not v1")
        return json.loads(body)

    mine = Envelope("mine", read, lambda tree: "v1:" + canonical_json(tree))
    spec = StoreSpec(name="todos", key="mine", envelope=mine, records_path="todos")
    split = split_key("mine", 'v1:{"todos":[1,2],"x":3}', [spec])
    assert split.records["todos"] == [1, 2]
    assert rebuild_text(mine, split.records, split.remainder) == 'v1:{"todos":[1,2],"x":3}'
    assert strip_text('v1:{"todos":[1,2],"x":3}', mine, strip_edits(split, [spec])) == 'v1:{"todos":[],"x":3}'
    with pytest.raises(SourceError) as refused:
        split_key("mine", "v2:{}", [spec])
    assert refused.value.code == "unreadable"


def test_upgrades_keep_the_written_value_in_the_remainder() -> None:
    spec = StoreSpec(
        name="tasks", key="task-store", records_path="tasks", version=1,
        upgrades={1: lambda state: {**state, "tasks": [{**task, "v": 1} for task in state["tasks"]]}},
    )  # fmt: skip
    raw = js({"state": {"tasks": [{"id": "a"}], "sel": "a"}, "version": 0})
    split = split_key("task-store", raw, [spec])
    assert split.records["tasks"] == [{"id": "a", "v": 1}]
    assert split.warnings == [{"code": "version_upgraded", "from": 0, "to": 1}]
    assert split.remainder["original"] == json.loads(raw)
    assert rebuild_text(ZUSTAND, split.records, split.remainder) == canonical_json(json.loads(raw))


def test_cleanup_follows_the_stores() -> None:
    strip = StoreSpec(name="a", key="k", records_path="a")
    delete = StoreSpec(name="b", key="k", records_path="b", cleanup="delete")
    keep = StoreSpec(name="c", key="k", records_path="c", cleanup="keep")
    assert cleanup_action([strip, delete]) == ("strip", None)
    assert cleanup_action([delete]) == ("delete", None)
    assert cleanup_action([strip, keep]) == ("keep", "store_keeps_key")
    assert cleanup_action([strip], quarantined=["a"]) == ("keep", "quarantined_records")
    assert cleanup_action([delete], quarantined=["b"]) == ("delete", None)
    assert cleanup_action([delete], open_conflicts=True) == ("keep", "open_conflicts")


def test_an_envelope_registered_by_name_is_usable_in_a_declared_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    from lsmigrate.shared import envelopes
    from lsmigrate.shared.declared import catalog_from_document
    from lsmigrate.shared.envelopes import envelope_named, register_envelope

    monkeypatch.setattr(envelopes, "_REGISTRY", dict(envelopes._REGISTRY))  # this test's registrations only

    def read(text: str) -> Any:
        return json.loads(text.removeprefix("v1:"))

    mine = register_envelope(Envelope("prefixed-v1", read, lambda tree: "v1:" + canonical_json(tree)))
    assert envelope_named("prefixed-v1") is mine
    with pytest.raises(ValueError, match="already registered"):
        register_envelope(Envelope("prefixed-v1", read))
    catalog = catalog_from_document(
        {"stores": [{"name": "todos", "key": "mine", "envelope": "prefixed-v1", "path": "todos"}]}, "stores.json"
    )
    split = split_key("mine", 'v1:{"todos":[{"id":"a"}]}', catalog.stores_for_key("mine"))
    assert split.records == {"todos": [{"id": "a"}]}
