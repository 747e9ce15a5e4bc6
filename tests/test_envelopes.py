"""Reading localStorage values through their envelopes: Zustand, redux-persist, bare JSON.

A value that is not JSON, or not the shape its spec expects, is a SourceError
naming the key, what was expected and what was found (never the content).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lsmigrate.demo.stores.tasks import TaskSchema
from lsmigrate.shared.envelopes import BARE, MAX_DEPTH, REDUX_PERSIST, ZUSTAND, SourceError
from lsmigrate.shared.stores import StoreSpec

TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyz"
TASKS = [{"id": "task-1", "title": "Fix"}, {"id": "task-2", "title": "Ship"}]
ZUSTAND_SHAPE = "a Zustand envelope {state, version} with an object state"


def spec(**overrides: Any) -> StoreSpec:
    """A task store spec; by default the Zustand task-store."""
    fields: dict[str, Any] = {"name": "tasks", "key": "task-store", "records_path": "tasks", "table": "tasks"}
    return StoreSpec(schema=TaskSchema(), **{**fields, **overrides})


def redux_spec(**overrides: Any) -> StoreSpec:
    return spec(name="redux_tasks", key="persist:root", envelope=REDUX_PERSIST, **overrides)


def bare_spec(**overrides: Any) -> StoreSpec:
    return spec(name="bare_tasks", key="tasks", envelope=BARE, **overrides)


def refused(store: StoreSpec, raw: str) -> SourceError:
    with pytest.raises(SourceError) as caught:
        store.extract(store.key or "", raw)
    return caught.value


def persisted(slices: dict[str, Any], persist: Any = None) -> str:
    """What redux-persist writes: every top-level value JSON-encoded a second time."""
    outer = {name: json.dumps(value) for name, value in slices.items()}
    if persist is not None:
        outer["_persist"] = json.dumps(persist)
    return json.dumps(outer)


# --- Zustand ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "version", "warnings"),
    [
        ({"state": {"tasks": TASKS}, "version": 0}, 0, []),
        ({"state": {"tasks": TASKS}}, 0, [{"code": "version_missing", "assumed": 0}]),
        ({"state": {"tasks": TASKS, "filter": "all"}, "version": 0, "other": 1}, 0, []),
    ],
)
def test_zustand_records_sit_in_the_state(envelope: dict[str, Any], version: int, warnings: list[Any]) -> None:
    extracted = spec().extract("task-store", json.dumps(envelope))
    assert extracted.records == TASKS
    assert extracted.version == version
    assert extracted.warnings == warnings
    assert extracted.key == "task-store"


@pytest.mark.parametrize(
    ("envelope", "expected", "found"),
    [
        ({"state": {"tasks": []}, "version": "1"}, "an integer version", "a string"),
        ({"state": {"tasks": []}, "version": 1.5}, "an integer version", "a number"),
        ({"state": {"tasks": []}, "version": None}, "an integer version", "null"),
        ({"state": {"tasks": []}, "version": True}, "an integer version", "a boolean"),
        ({"state": {"tasks": []}, "version": [0]}, "an integer version", "an array of 1 items"),
        ({"state": [TASKS], "version": 0}, ZUSTAND_SHAPE, "an object with keys 'state', 'version'"),
        ({"state": "tasks", "version": 0}, ZUSTAND_SHAPE, "an object with keys 'state', 'version'"),
        ({"tasks": TASKS}, ZUSTAND_SHAPE, "an object with keys 'tasks'"),
        ({}, ZUSTAND_SHAPE, "an empty object"),
        (TASKS, ZUSTAND_SHAPE, "an array of 2 items"),
        ("task-store", ZUSTAND_SHAPE, "a string"),
        (None, ZUSTAND_SHAPE, "null"),
        ({"state": {"tasks": {"a": 1}}, "version": 0}, "an array at state.tasks", "an object with keys 'a'"),
        ({"state": {"tasks": "x"}, "version": 0}, "an array at state.tasks", "a string"),
        (
            {"state": {"items": []}, "version": 0},
            "an array at state.tasks",
            "no 'tasks' in an object with keys 'items'",
        ),
        ({"state": {}, "version": 0}, "an array at state.tasks", "no 'tasks' in an empty object"),
    ],
)
def test_a_zustand_value_of_the_wrong_shape_is_reported_precisely(envelope: Any, expected: str, found: str) -> None:
    error = refused(spec(), json.dumps(envelope))
    assert (error.key, error.code, error.expected, error.found) == ("task-store", "wrong_shape", expected, found)
    assert str(error) == f"task-store: expected {expected}, found {found}"
    assert error.as_dict() == {"key": "task-store", "code": "wrong_shape", "expected": expected, "found": found}


def test_an_object_with_many_keys_is_described_by_its_first_names() -> None:
    envelope = {f"k{i:02d}": i for i in range(11)}
    error = refused(spec(), json.dumps(envelope))
    assert error.found == "an object with keys 'k00', 'k01', 'k02', 'k03', 'k04', 'k05', 'k06', 'k07' and 3 more"


@pytest.mark.parametrize(
    ("records_path", "where"),
    [("", "state"), ("tasks", "state.tasks"), ("data.tasks", "state.data.tasks")],
)
def test_the_path_in_an_error_is_where_the_array_should_be(records_path: str, where: str) -> None:
    error = refused(spec(records_path=records_path), json.dumps({"state": {"data": {"tasks": 1}, "tasks": 1}}))
    assert error.expected == f"an array at {where}"


def test_a_nested_records_path_is_followed() -> None:
    raw = json.dumps({"state": {"data": {"tasks": TASKS}}, "version": 0})
    assert spec(records_path="data.tasks").extract("task-store", raw).records == TASKS
    error = refused(spec(records_path="data.tasks"), json.dumps({"state": {"data": [1]}, "version": 0}))
    assert (error.expected, error.found) == ("an array at state.data.tasks", "an array of 1 items")


# --- redux-persist ------------------------------------------------------------------------------


def test_a_redux_persist_blob_is_decoded_slice_by_slice() -> None:
    raw = persisted(
        {"tasks": TASKS, "user": {"name": "Ada"}, "router": None},
        {"version": 1, "rehydrated": True},
    )
    # Every top-level value is a string holding JSON text.
    assert all(isinstance(value, str) for value in json.loads(raw).values())
    extracted = redux_spec(version=1).extract("persist:root", raw)
    assert extracted.records == TASKS
    assert extracted.version == 1
    assert extracted.warnings == []


def test_redux_persist_state_is_what_upgrades_see() -> None:
    seen: list[Any] = []

    def upgrade(state: Any) -> Any:
        seen.append(state)
        return {**state, "tasks": state["todos"]}

    raw = persisted({"todos": TASKS, "user": "Ada"}, {"version": 0, "rehydrated": True})
    extracted = redux_spec(version=1, upgrades={1: upgrade}).extract("persist:root", raw)
    assert seen == [{"todos": TASKS, "user": "Ada"}]  # decoded, without _persist
    assert extracted.records == TASKS
    assert extracted.warnings == [{"code": "version_upgraded", "from": 0, "to": 1}]


def test_redux_persist_without_persist_entry_is_version_minus_one_as_redux_persist_assumes() -> None:
    extracted = redux_spec().extract("persist:root", persisted({"tasks": TASKS}))
    assert extracted.records == TASKS
    assert extracted.version == -1
    # No upgrade ran, so no version_upgraded; redux-persist's own default -1 is no warning when written.
    assert extracted.warnings == [{"code": "version_missing", "assumed": -1}]
    written = redux_spec().extract("persist:root", persisted({"tasks": TASKS, "_persist": {"version": -1}}))
    assert written.version == -1 and written.warnings == []


@pytest.mark.parametrize(
    ("outer", "code", "expected", "found"),
    [
        (
            {"tasks": TASKS, "_persist": '{"version":0}'},
            "wrong_shape",
            "a JSON-encoded string at tasks",
            "an array of 2 items",
        ),
        ({"tasks": "[]", "count": 3}, "wrong_shape", "a JSON-encoded string at count", "a number"),
        ({"tasks": "[{", "_persist": '{"version":0}'}, "invalid_json", "JSON text at tasks", None),
        ({"tasks": "[]", "_persist": "{version: 0}"}, "invalid_json", "JSON text at _persist", None),
        (
            {"tasks": "[]", "_persist": '{"version":"1"}'},
            "wrong_shape",
            "a _persist entry with an integer version",
            "an object with keys 'version'",
        ),
        (
            {"tasks": "[]", "_persist": "[0]"},
            "wrong_shape",
            "a _persist entry with an integer version",
            "an array of 1 items",
        ),
        (
            {"tasks": '{"a": 1}', "_persist": '{"version":0}'},
            "wrong_shape",
            "an array at tasks",
            "an object with keys 'a'",
        ),
        (
            {"user": "{}", "_persist": '{"version":0}'},
            "wrong_shape",
            "an array at tasks",
            "no 'tasks' in an object with keys '_persist', 'user'",
        ),
        ([TASKS], "wrong_shape", "a redux-persist object of JSON-encoded values", "an array of 1 items"),
        ("[]", "wrong_shape", "a redux-persist object of JSON-encoded values", "a string"),
    ],
)
def test_a_redux_persist_value_of_the_wrong_shape_is_reported_precisely(
    outer: Any, code: str, expected: str, found: str | None
) -> None:
    error = refused(redux_spec(), json.dumps(outer))
    assert (error.key, error.code, error.expected) == ("persist:root", code, expected)
    if found is None:
        assert error.found == "text that is not valid JSON"
    else:
        assert error.found == found


# --- bare JSON ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [TASKS, {"tasks": TASKS}, {"tasks": TASKS, "version": 3}],
)
def test_bare_json_is_the_array_or_an_object_holding_it(value: Any) -> None:
    extracted = bare_spec().extract("tasks", json.dumps(value))
    assert extracted.records == TASKS
    assert extracted.version is None
    assert extracted.warnings == []


@pytest.mark.parametrize(
    ("records_path", "value", "expected", "found"),
    [
        ("tasks", {"items": TASKS}, "an array at tasks", "no 'tasks' in an object with keys 'items'"),
        ("tasks", {"tasks": {"a": TASKS}}, "an array at tasks", "an object with keys 'a'"),
        ("tasks", "tasks", "an array at tasks", "a string"),
        ("tasks", 3, "an array at tasks", "a number"),
        ("", {"tasks": TASKS}, "an array at the top level", "an object with keys 'tasks'"),
        ("", None, "an array at the top level", "null"),
        ("data.tasks", {"data": 1}, "an array at data.tasks", "a number"),
    ],
)
def test_a_bare_value_of_the_wrong_shape_is_reported_precisely(
    records_path: str, value: Any, expected: str, found: str
) -> None:
    error = refused(bare_spec(records_path=records_path), json.dumps(value))
    assert (error.key, error.code, error.expected, error.found) == ("tasks", "wrong_shape", expected, found)


# --- text that is not JSON ----------------------------------------------------------------------


@pytest.mark.parametrize("store", [spec(), redux_spec(), bare_spec()], ids=["zustand", "redux-persist", "bare"])
@pytest.mark.parametrize(
    ("raw", "found"),
    [
        ("", "text that is not valid JSON"),
        ("{not json", "text that is not valid JSON"),
        ("[1, 2", "text that is not valid JSON"),
        ('{"a": 1} {"b": 2}', "text that is not valid JSON"),
        ("undefined", "text that is not valid JSON"),
        ("NaN", "invalid JSON (NaN is not valid JSON)"),
        ('{"state": {"tasks": [Infinity]}}', "invalid JSON (Infinity is not valid JSON)"),
        ("[-Infinity]", "invalid JSON (-Infinity is not valid JSON)"),
        ('{"state": {"tasks": [1e400]}}', "invalid JSON (a number too large for a double)"),
        ("[-1E+999]", "invalid JSON (a number too large for a double)"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"invalid JSON (nested more than {MAX_DEPTH} levels deep)"),
        ("[" * 100_000, f"invalid JSON (nested more than {MAX_DEPTH} levels deep)"),
    ],
)
def test_text_that_is_not_json_is_reported_and_left_alone(store: StoreSpec, raw: str, found: str) -> None:
    error = refused(store, raw)
    assert (error.key, error.code, error.expected, error.found) == (store.key, "invalid_json", "JSON text", found)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-400", 0.0),  # underflow is a number JSON.parse reads the same way
        ("1" + "0" * 400, 10**400),
        ("1.7976931348623157e308", 1.7976931348623157e308),
        ('"\\ud800"', "\ud800"),
    ],
    ids=["underflow", "400-digit integer", "largest double", "lone surrogate"],
)
def test_numbers_and_strings_json_can_hold_are_read(text: str, value: Any) -> None:
    assert bare_spec(one_record=True, records_path="").extract("tasks", text).records == [value]


@pytest.mark.parametrize(
    "raw",
    [
        "[" * MAX_DEPTH + "]" * MAX_DEPTH,
        # Brackets inside strings, escaped quotes and escaped backslashes are not nesting.
        json.dumps(["[" * 5000, '\\"[[[' * 1000, "\\" * 999 + "{" * 999]),
    ],
    ids=["at the limit", "brackets in strings"],
)
def test_nesting_up_to_the_limit_is_read(raw: str) -> None:
    [record] = bare_spec(one_record=True, records_path="").extract("tasks", raw).records
    assert record == json.loads(raw)


# --- version upgrades ---------------------------------------------------------------------------


def logging_upgrades(log: list[int], *versions: int) -> dict[int, Any]:
    def upgrade_to(version: int) -> Any:
        def upgrade(state: dict[str, Any]) -> dict[str, Any]:
            log.append(version)
            return {**state, "steps": [*state.get("steps", []), version]}

        return upgrade

    return {version: upgrade_to(version) for version in versions}


@pytest.mark.parametrize(
    ("stored", "ran"),
    [(-1, [0, 1, 3]), (0, [1, 3]), (1, [3]), (2, [3]), (3, [])],
)
def test_upgrades_above_the_stored_version_run_in_ascending_order(stored: int, ran: list[int]) -> None:
    log: list[int] = []
    # Declared out of order: createMigrate sorts the versions.
    store = spec(version=3, upgrades=logging_upgrades(log, 3, 0, 1))
    raw = json.dumps({"state": {"tasks": TASKS}, "version": stored})
    extracted = store.extract("task-store", raw)
    assert log == ran
    assert extracted.records == TASKS
    assert extracted.version == stored
    upgraded = [{"code": "version_upgraded", "from": stored, "to": 3}] if stored < 3 else []
    assert extracted.warnings == upgraded


def test_an_upgrade_can_move_the_records() -> None:
    store = spec(version=1, upgrades={1: lambda state: {"tasks": state.pop("items")}})
    raw = json.dumps({"state": {"items": TASKS}, "version": 0})
    assert store.extract("task-store", raw).records == TASKS


def test_a_missing_version_is_upgraded_from_zero() -> None:
    log: list[int] = []
    store = spec(version=2, upgrades=logging_upgrades(log, 1, 2))
    extracted = store.extract("task-store", json.dumps({"state": {"tasks": TASKS}}))
    assert log == [1, 2]
    assert extracted.warnings == [
        {"code": "version_missing", "assumed": 0},
        {"code": "version_upgraded", "from": 0, "to": 2},
    ]


@pytest.mark.parametrize("store", [spec(version=2), redux_spec(version=2)], ids=["zustand", "redux-persist"])
def test_a_stored_version_newer_than_the_spec_is_an_error(store: StoreSpec) -> None:
    if store.envelope is ZUSTAND:
        raw = json.dumps({"state": {"tasks": TASKS}, "version": 3})
    else:
        raw = persisted({"tasks": TASKS}, {"version": 3, "rehydrated": True})
    error = refused(store, raw)
    assert (error.code, error.expected, error.found) == ("version_too_new", "state version 2 or older", "version 3")
    assert error.key == store.key


def test_an_upgrade_that_raises_is_reported_without_the_state() -> None:
    def upgrade(state: dict[str, Any]) -> dict[str, Any]:
        raise ValueError(f"cannot upgrade {state!r}")

    store = spec(version=2, upgrades={1: lambda state: state, 2: upgrade})
    raw = json.dumps({"state": {"tasks": [{"githubToken": TOKEN, "title": "secret plan"}]}, "version": 0})
    error = refused(store, raw)
    assert (error.key, error.code) == ("task-store", "upgrade_failed")
    assert (error.expected, error.found) == ("state the upgrade to version 2 accepts", "ValueError from the upgrade")
    assert isinstance(error.__cause__, ValueError)  # the app's own error, chained for a traceback
    for shown in (str(error), json.dumps(error.as_dict())):
        assert TOKEN not in shown and "secret plan" not in shown


def test_no_upgrade_runs_for_bare_json_which_has_no_version() -> None:
    log: list[int] = []
    extracted = bare_spec(version=1, upgrades=logging_upgrades(log, 1)).extract("tasks", json.dumps(TASKS))
    assert log == []
    assert extracted.version is None


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"state": {"tasks": []}, "version": TOKEN}),
        json.dumps({"state": TOKEN}),
        json.dumps({"state": {"tasks": {"githubToken": TOKEN}}, "version": 0}),
        json.dumps({"state": {"tasks": TOKEN}, "version": 0}),
        json.dumps({"state": {"tasks": [{"githubToken": TOKEN}]}})[:-3],
        '{"state": {"tasks": [{"githubToken": "' + TOKEN + '\x01"}]}}',
    ],
)
def test_a_source_error_never_shows_a_value(raw: str) -> None:
    error = refused(spec(), raw)
    assert TOKEN not in str(error)
    assert TOKEN not in json.dumps(error.as_dict())
