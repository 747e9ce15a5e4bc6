"""Real state libraries' localStorage migrated whole (design §10, §11), with e2e/libraries/stores.json.

Each scenario of e2e/libraries writes its state through the real npm library on the server's
origin; a host page with the loader in automatic mode then migrates it. Every key a store claims
must come back from the server exactly as the library wrote it, and cleanup must leave exactly what
it promises: record containers emptied in the key's own text (every other byte as written), documents
(one, scalar) left as they are, a key whose store says `delete` removed, keys no store claims untouched.
After cleanup, a library writing its keys again boots no Pyodide, and a fresh browser is restored whole
from the server (`window.lsmigrate.restoreFromServer()`).
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request

from e2e import libraries
from e2e.conftest import ROOT, LiveServer, catalog_server
from lsmigrate.shared.declared import catalog_from_file
from tests.fixtures_services import PostgresServer, RedisServer

pytestmark = pytest.mark.e2e

STORES = Path(__file__).resolve().parent / "libraries" / "stores.json"
README = ROOT / "README.md"
HOST_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>App</title></head><body><h1>App</h1>
<script src="/lsmigrate/loader.js" data-token="{token}" data-mode="{mode}"></script></body></html>"""
END_OF_RUN = (
    "window.__lsmigrateEnd = new Promise((resolve) => {"
    " window.addEventListener('lsmigrate:done', (event) => resolve(event.detail));"
    " window.addEventListener('lsmigrate:error', (event) => resolve(event.detail)); });"
)

#: Finds a record container (or another part) in a key's tree: the parsed value, redux-persist's slices parsed too.
Locate = Callable[[Any], Any]


def query(tree: Any, query_key: list[Any]) -> Any:
    """The data of the persisted TanStack Query client's query with that key."""
    [found] = [item for item in tree["clientState"]["queries"] if item["queryKey"] == query_key]
    return found["state"]["data"]


@dataclass(frozen=True)
class Expected:
    """What migrating a scenario must leave: rows per store, and each key's fate."""

    rows: dict[str, int]
    #: key -> the parts cleanup rewrites in its text: where each sits, and the JSON text it becomes.
    stripped: dict[str, list[tuple[Locate, str]]] = field(default_factory=dict)
    deleted: tuple[str, ...] = ()
    #: Keys holding nothing but documents (one, scalar): the app's live state, left as it is.
    kept: tuple[str, ...] = ()
    #: Keys no store claims: never read, never touched.
    untouched: tuple[str, ...] = ()
    #: Values of fields typed secret: on the server only encrypted, in no row's data and no remainder.
    secrets: tuple[str, ...] = ()

    @property
    def claimed(self) -> list[str]:
        return sorted([*self.stripped, *self.deleted, *self.kept])


EXPECTED = {
    "zustand": Expected(
        rows={"zustand-todos": 5},
        stripped={"todo-app": [(lambda tree: tree["state"]["todos"], "[]")]},
    ),
    "redux-persist": Expected(
        rows={"redux-todos": 5, "redux-settings": 1},
        stripped={"persist:root": [(lambda tree: tree["todos"]["items"], "[]")]},
    ),
    "rtk-entity-adapter": Expected(
        rows={"rtk-todos": 5},
        stripped={
            "persist:rtk": [
                (lambda tree: tree["todos"]["ids"], "[]"),
                (lambda tree: tree["todos"]["entities"], "{}"),
            ]
        },
        untouched=("persist:ui",),
    ),
    "pinia": Expected(
        rows={"pinia-todos": 5, "pinia-token": 1},
        stripped={"todos": [(lambda tree: tree["items"], "[]")]},
        secrets=("secret-token-value-123",),
    ),
    "jotai": Expected(
        rows={"jotai-dark-mode": 1, "jotai-user-name": 1, "jotai-counter": 1, "jotai-last-visit": 1, "jotai-todos": 5},
        deleted=("todos-atom",),
        kept=("counter", "darkMode", "lastVisit", "userName"),
    ),
    "mobx": Expected(
        rows={"mobx-todos": 5, "mobx-projects": 2, "mobx-session": 1},
        stripped={
            "TodoStore": [(lambda tree: tree["todos"], "[]"), (lambda tree: tree["projectsById"], "[]")],
        },
        kept=("SessionStore",),
    ),
    "tanstack-query": Expected(
        rows={"query-todos": 5, "query-projects": 2, "query-persisted": 3},
        stripped={
            "REACT_QUERY_OFFLINE_CACHE": [
                (lambda tree: query(tree, ["todos"]), "[]"),
                (lambda tree: query(tree, ["projects"]), "[]"),
            ],
            'tanstack-query-["todos",{"status":"open"}]': [(lambda tree: tree["state"]["data"], "[]")],
        },
    ),
    "superjson": Expected(
        rows={"superjson-todos": 5},
        stripped={
            "superjson-state": [
                (lambda tree: tree["json"]["state"]["todosById"], "[]"),
                # superjson's annotations of the Map's entries go with them; the Map stays a Map.
                (lambda tree: tree["meta"]["values"]["state.todosById"], '["map"]'),
            ]
        },
    ),
}
assert sorted(EXPECTED) == sorted(libraries.SCENARIOS)
#: An init script: the keys the page writes, in window.__writes.
RECORD_WRITES = (
    "window.__writes = []; const setItem = Storage.prototype.setItem;"
    " Storage.prototype.setItem = function (key, value) {"
    " window.__writes.push(key); return setItem.call(this, key, value); };"
)
#: The scenarios whose library writes its keys again on every app start (e2e/libraries/OUTPUTS.md).
REPERSIST_ON_BOOT = ("redux-persist", "rtk-entity-adapter", "mobx")


def is_redux_persist(key: str) -> bool:
    """True for the scenarios' redux-persist keys."""
    return key.startswith("persist:")


def tree_of(key: str, text: str) -> Any:
    """A key's value parsed: redux-persist's slices, JSON text each, parsed too."""
    value = json.loads(text)
    if is_redux_persist(key):
        return {name: json.loads(slice_text) for name, slice_text in value.items()}
    return value


def js_json(value: Any) -> str:
    """A JSON value as JSON.stringify writes it (what the libraries wrote)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def stripped_text(key: str, original: str, edits: list[tuple[Locate, str]]) -> str:
    """The original text with each part's JSON text replaced where it sits; every other byte unchanged."""
    tree, text = tree_of(key, original), original
    for locate, empty in edits:
        part = js_json(locate(tree))
        if is_redux_persist(key):  # the slice is a JSON string inside the outer object: escaped once more
            part, empty = js_json(part)[1:-1], js_json(empty)[1:-1]
        assert text.count(part) == 1, f"{key}: the part to empty is not written exactly once"
        text = text.replace(part, empty)
    return text


@pytest.fixture(scope="module")
def libraries_server(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The standalone service configured with e2e/libraries/stores.json (no demo preset), on its own database."""
    instance = tmp_path_factory.mktemp("libraries")
    server = catalog_server(postgres, redis_server, instance, "libraries", LSMIGRATE_STORES=str(STORES))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def open_host_page(page: Page, server: LiveServer, token: str, mode: str = "auto") -> None:
    """Open the app's page (/app) on the server's origin, the loader in `mode`."""
    body = HOST_PAGE.format(token=token, mode=mode)
    page.route(f"{server.url}/app", lambda route: route.fulfill(status=200, content_type="text/html", body=body))
    page.goto(f"{server.url}/app")


def api(server: LiveServer, token: str, path: str) -> Any:
    """GET the migration API as the token's user."""
    request = urllib.request.Request(f"{server.url}/api/migration{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def server_value(server: LiveServer, token: str, key: str) -> dict[str, Any]:
    """GET /keys/<key>: the key's value as the server rebuilds it."""
    answer: dict[str, Any] = api(server, token, "/keys/" + urllib.parse.quote(key, safe=""))
    return answer


@dataclass
class Migrated:
    """One scenario seeded by its library and migrated by the loader."""

    token: str
    originals: dict[str, str]
    report: dict[str, Any]


def seed_and_migrate(page: Page, server: LiveServer, name: str, user: str) -> Migrated:
    """Seed the scenario through its library on the server's origin, then let the loader (auto) migrate it."""
    token = server.token(user)
    libraries.load_scenario(page, server.url, name)
    libraries.seed(page)
    originals = libraries.local_storage(page)
    page.add_init_script(END_OF_RUN)
    open_host_page(page, server, token)
    report: dict[str, Any] = page.evaluate("() => window.__lsmigrateEnd")
    return Migrated(token, originals, report)


def app_keys(page: Page) -> dict[str, str]:
    """The origin's localStorage without lsmigrate's own keys."""
    return {key: value for key, value in libraries.local_storage(page).items() if not key.startswith("lsmigrate:")}


@pytest.mark.parametrize("name", libraries.SCENARIOS)
def test_a_librarys_keys_migrate_whole_and_cleanup_leaves_what_it_promises(
    page: Page, libraries_server: LiveServer, name: str
) -> None:
    expected = EXPECTED[name]
    user = f"{name}-migrates"
    run = seed_and_migrate(page, libraries_server, name, user)
    assert sorted(run.originals) == sorted([*expected.claimed, *expected.untouched]), "the scenario's keys"

    report = run.report
    assert report["state"] == "done", report
    assert report["errors"] == [], report["errors"]
    assert report["pending_keys"] == []
    assert sorted(report["unknown_keys"]) == sorted(expected.untouched)
    cleanups = {key: entry.get("cleanup") or entry["kept"]["reason"] for key, entry in report["keys"].items()}
    assert cleanups == {
        **dict.fromkeys(expected.stripped, "stripped"),
        **dict.fromkeys(expected.deleted, "deleted"),
        **dict.fromkeys(expected.kept, "documents_stay"),
    }

    rows = libraries_server.rows("SELECT store, count(*) FROM migrated_records WHERE user_id = %s GROUP BY store", user)
    assert dict(rows) == expected.rows

    remainders = libraries_server.rows(
        "SELECT key FROM migration_remainders WHERE session_id = %s ORDER BY key", report["session_id"]
    )
    assert [key for (key,) in remainders] == expected.claimed

    stored = libraries_server.rows(
        "SELECT data::text FROM migrated_records WHERE user_id = %s"
        " UNION ALL SELECT document::text FROM migration_remainders WHERE user_id = %s",
        user,
        user,
    )
    for secret in expected.secrets:
        assert not any(secret in text for (text,) in stored), "a secret stored in plain text"
    if expected.secrets:
        encrypted = "SELECT count(*) FROM migrated_records WHERE user_id = %s AND secrets_encrypted IS NOT NULL"
        assert libraries_server.rows(encrypted, user) == [(len(expected.secrets),)]

    held = api(libraries_server, run.token, "/keys")["keys"]
    assert sorted(entry["key"] for entry in held) == expected.claimed
    for key in expected.claimed:
        answer = server_value(libraries_server, run.token, key)
        assert answer["key"] == key and answer["as_verified"] is True
        assert tree_of(key, answer["value"]) == tree_of(key, run.originals[key]), f"{key} as the server rebuilds it"

    after = app_keys(page)
    assert sorted(after) == sorted([*expected.stripped, *expected.kept, *expected.untouched]), "deleted keys gone"
    for key in [*expected.kept, *expected.untouched]:
        assert after[key] == run.originals[key], f"{key}: left as it was, yet changed"
    for key, edits in expected.stripped.items():
        assert after[key] == stripped_text(key, run.originals[key], edits), f"{key}: not stripped in place"


def boots_the_runtime(method: str, path: str) -> bool:
    """True for a request a page with nothing to migrate must not make: Pyodide, a wheel, a session."""
    if path.startswith("/lsmigrate/pyodide/") or path.endswith(".whl"):
        return True
    return method == "POST" and path.rstrip("/").endswith("/api/migration/sessions")


@pytest.mark.parametrize("name", libraries.SCENARIOS)
def test_a_library_re_persisting_after_cleanup_boots_no_pyodide(
    page: Page, libraries_server: LiveServer, name: str
) -> None:
    run = seed_and_migrate(page, libraries_server, name, f"{name}-reboots")
    assert run.report["state"] == "done", run.report
    cleaned = app_keys(page)

    page.add_init_script(RECORD_WRITES)
    libraries.load_scenario(page, libraries_server.url, name)
    libraries.boot(page)  # a fresh app start
    rewritten = page.evaluate("() => window.__writes")
    rebooted = app_keys(page)
    if name in REPERSIST_ON_BOOT:  # the library writes every key cleanup left again
        assert set(cleaned) <= set(rewritten), rewritten

    requests: list[tuple[str, str]] = []

    def record(request: Request) -> None:
        requests.append((request.method, urllib.parse.urlsplit(request.url).path))

    page.on("request", record)
    open_host_page(page, libraries_server, run.token)
    assert page.evaluate("() => window.lsmigrate.needsMigration()") is False, rebooted
    # The loader decides while the page loads: a run it started would be under way by now.
    assert page.evaluate("() => window.lsmigrate.status().state") == "idle"
    assert ("GET", "/lsmigrate/loader.js") in requests
    assert [f"{method} {path}" for method, path in requests if boots_the_runtime(method, path)] == []


@pytest.mark.parametrize("name", libraries.SCENARIOS)
def test_restore_from_server_writes_back_every_key_the_server_holds(
    page: Page, browser: Browser, libraries_server: LiveServer, name: str
) -> None:
    run = seed_and_migrate(page, libraries_server, name, f"{name}-restores")
    assert run.report["state"] == "done", run.report
    claimed = EXPECTED[name].claimed

    context = browser.new_context()
    try:
        fresh = context.new_page()
        fresh.on("console", lambda message: print(f"[browser {message.type}] {message.text}"))
        open_host_page(fresh, libraries_server, run.token, mode="manual")
        assert app_keys(fresh) == {}
        written = fresh.evaluate("() => window.lsmigrate.restoreFromServer()")
        assert sorted(written) == claimed
        restored = app_keys(fresh)
        assert sorted(restored) == claimed
        for key in claimed:
            assert tree_of(key, restored[key]) == tree_of(key, run.originals[key]), f"{key} restored"
        assert fresh.evaluate("() => window.lsmigrate.needsMigration()") is False
    finally:
        context.close()


def test_the_readme_recipes_are_the_catalog_these_tests_run() -> None:
    """README's "Recipes for state libraries" blocks, together, are e2e/libraries/stores.json."""
    section = README.read_text().split("### Recipes for state libraries\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```jsonc\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 7, "one block per library"
    recipes = [store for block in blocks for store in json.loads(block)["stores"]]
    assert recipes == json.loads(STORES.read_text())["stores"]
    assert [spec.name for spec in catalog_from_file(STORES)] == [store["name"] for store in recipes]
