"""An integrator's stores in the page: the stores wheel installed in Pyodide, the same mapping as the server,
and a page built for an older catalog refused before anything is sent or deleted.

The server is the standalone service with LSMIGRATE_STORES naming tests/host_app's Python catalog (no
demo preset), its host table made from the host's model.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, Route

from e2e.conftest import ROOT, LiveServer, catalog_server, seed
from e2e.test_pyodide_parity import describe_difference, loader_config_of, map_in_cpython, map_in_pyodide
from tests.fixtures_services import PostgresServer, RedisServer
from tests.test_host_app import local_storage

pytestmark = pytest.mark.e2e
STORES = "tests.host_app.stores:STORES"
HOST_PAGE = """<!doctype html><html><head><title>Todo app</title></head><body><h1>Todos</h1>
<script src="/lsmigrate/loader.js" data-token="{token}" data-mode="auto"></script></body></html>"""


@pytest.fixture(scope="module")
def integrator_server(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The standalone service configured with the host app's stores, on its own database."""
    instance = tmp_path_factory.mktemp("integrator")
    server = catalog_server(
        postgres, redis_server, instance, "integrator", LSMIGRATE_STORES=STORES, LSMIGRATE_MODELS="tests.host_app.app"
    )
    url = server.env["DATABASE_URL"]
    create_tables = (
        "from sqlalchemy import create_engine; from tests.host_app.app import Todo;"
        f" Todo.__table__.create(create_engine({url!r}))"
    )
    subprocess.run([sys.executable, "-c", create_tables], check=True, cwd=ROOT)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_page_installs_the_integrators_stores_and_maps_exactly_like_the_server(
    page: Page, integrator_server: LiveServer
) -> None:
    config = loader_config_of(integrator_server)
    assert config["stores"] == {"module": STORES}
    assert any("lsmigrate_stores_tests_host_app_stores" in url for url in config["wheels"])
    named = {"host": local_storage(), "bad": {"todo-app": "{not json", "notes": json.dumps({"not": "an array"})}}
    cpython = {name: map_in_cpython(items, config["stores"]) for name, items in named.items()}
    pyodide = map_in_pyodide(page, integrator_server, config, named)
    for name in named:
        identical = pyodide[name] == cpython[name]
        assert identical, describe_difference(name, cpython[name], pyodide[name])
    mapped = json.loads(cpython["host"])
    assert sorted(mapped["keys"]) == ["notes", "todo-app"]
    assert sorted(mapped["unknown"]) == ["commentDraft", "form-draft-1", "task-store", "theme"]


def test_the_stores_wheel_holds_the_stores_module_and_nothing_else_of_the_app(integrator_server: LiveServer) -> None:
    import io
    import urllib.request
    import zipfile

    config = loader_config_of(integrator_server)
    [url] = [url for url in config["wheels"] if "lsmigrate_stores_" in url]
    with urllib.request.urlopen(integrator_server.url + url) as response:
        assert "immutable" in response.headers["Cache-Control"]
        names = zipfile.ZipFile(io.BytesIO(response.read())).namelist()
    python = sorted(name for name in names if name.endswith(".py"))
    assert python == ["tests/__init__.py", "tests/host_app/__init__.py", "tests/host_app/stores.py"]
    assert not any("app.py" in name for name in names)


def host_page(page: Page, server: LiveServer, user: str, stores: dict[str, str] | None = None) -> None:
    """Serve the host app's page (the loader in automatic mode) at /todos; the loader's stores replaced by `stores`."""
    token = server.token(user)
    page.route(
        f"{server.url}/todos",
        lambda route: route.fulfill(status=200, content_type="text/html", body=HOST_PAGE.format(token=token)),
    )
    if stores is not None:

        def older(route: Route) -> None:
            source = route.fetch().text()
            replaced = re.sub(r'"stores": \{.*?\}, "', lambda _: f'"stores": {json.dumps(stores)}, "', source, count=1)
            assert replaced != source
            route.fulfill(status=200, content_type="text/javascript", body=replaced)

        page.route(f"{server.url}/lsmigrate/loader.js", older)


def run_host_page(page: Page, server: LiveServer, user: str, stores: dict[str, str] | None = None) -> dict[str, Any]:
    """Load the host page on seeded localStorage and wait for the run's outcome (done or error)."""
    seed(page, server, local_storage())
    host_page(page, server, user, stores)
    page.add_init_script(
        "window.__lsmigrateEnd = new Promise((resolve) => {"
        " window.addEventListener('lsmigrate:done', (event) => resolve(event.detail));"
        " window.addEventListener('lsmigrate:error', (event) => resolve(event.detail)); });"
    )
    page.goto(f"{server.url}/todos")
    outcome: dict[str, Any] = page.evaluate("() => window.__lsmigrateEnd")
    return outcome


def test_the_integrators_app_migrates_in_the_page(page: Page, integrator_server: LiveServer) -> None:
    report = run_host_page(page, integrator_server, "carol")
    assert report["state"] == "done", report
    assert integrator_server.rows("SELECT title FROM todos WHERE user_id = 'carol' ORDER BY title") == [
        ("Buy milk",),
        ("Ship it",),
    ]
    assert integrator_server.rows("SELECT count(*) FROM migrated_records WHERE user_id = 'carol'") == [(2,)]
    left = page.evaluate("() => Object.keys(localStorage).filter((k) => !k.startsWith('lsmigrate:')).sort()")
    # The app's own keys untouched; todo-app and notes stripped of their records, the rest as it was.
    assert left == ["commentDraft", "form-draft-1", "notes", "task-store", "theme", "todo-app"]
    assert page.evaluate("() => localStorage.getItem('notes')") == "[]"


def test_a_page_built_for_an_older_catalog_is_refused_nothing_written_nothing_deleted(
    page: Page, integrator_server: LiveServer
) -> None:
    text = (ROOT / "tests/host_app/stores.json").read_text()
    older = {"file": "stores.json", "text": text.replace('"version": 2', '"version": 1')}
    report = run_host_page(page, integrator_server, "dave", stores=older)
    assert report["state"] == "failed", report
    assert report["error"]["code"] == "stores_version_mismatch"
    assert integrator_server.rows("SELECT count(*) FROM migration_sessions WHERE user_id = 'dave'") == [(0,)]
    stored = page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")
    assert {key: value for key, value in stored.items() if not key.startswith("lsmigrate:")} == local_storage()
