"""Where Pyodide runs (design §13): a dedicated Web Worker, under a Content-Security-Policy with worker-src 'self',
uploads gzip-compressed; the page's own thread where workers are missing or refused, and status() says which."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, Route

from e2e.conftest import LiveServer, seed
from e2e.test_runner_flows import local_keys, open_demo, outcome, task_count, tasks_store, user_id

pytestmark = pytest.mark.e2e


def migrate(page: Page, live_server: LiveServer, records: int = 300) -> tuple[str, dict[str, Any], dict[str, Any]]:
    user = user_id()
    seed(page, live_server, {"task-store": tasks_store(records)})
    open_demo(page, live_server, user, "&batch=100")
    report = outcome(page)
    assert report["state"] == "done", report
    assert task_count(live_server, user) == (records, records)
    assert local_keys(page) == []
    return user, report, page.evaluate("() => window.lsmigrate.status()")


def test_the_worker_runs_it_under_the_demos_policy_and_uploads_compressed(page: Page, live_server: LiveServer) -> None:
    uploads: list[dict[str, str]] = []
    page.on(
        "request",
        lambda request: uploads.append(request.headers) if "/batches/" in request.url else None,
    )
    policy = page.request.get(f"{live_server.url}/demo?user=x").headers["content-security-policy"]
    assert "worker-src 'self'" in policy and "default-src 'self'" in policy
    _, _, status = migrate(page, live_server)
    assert (status["runtime"], status["runtime_note"]) == ("worker", None)
    assert uploads and all(headers.get("content-encoding") == "gzip" for headers in uploads), uploads
    memory = page.evaluate("() => window.lsmigrate.memory()")
    assert memory["booted"] is True and memory["runtime"] == "worker" and memory["wasm_bytes"] > 0
    # Pyodide came to the worker, not to the page: the page's own timeline fetched no runtime.
    fetched = page.evaluate("() => performance.getEntriesByType('resource').map((entry) => entry.name)")
    assert not [name for name in fetched if name.endswith((".wasm", ".whl", "python_stdlib.zip"))]


def test_without_workers_it_runs_on_the_pages_thread_and_says_so(page: Page, live_server: LiveServer) -> None:
    page.add_init_script("delete window.Worker;")
    uploads: list[dict[str, str]] = []
    page.on("request", lambda request: uploads.append(request.headers) if "/batches/" in request.url else None)
    _, _, status = migrate(page, live_server)
    assert status["runtime"] == "main-thread"
    assert "no Web Workers" in status["runtime_note"]
    assert uploads and not [headers for headers in uploads if "content-encoding" in headers]  # as before


def test_a_policy_that_refuses_workers_falls_back_to_the_pages_thread(page: Page, live_server: LiveServer) -> None:
    def refuse_workers(route: Route) -> None:
        response = route.fetch()
        headers = {**response.headers}
        headers["content-security-policy"] = headers["content-security-policy"].replace(
            "worker-src 'self'", "worker-src 'none'"
        )
        route.fulfill(response=response, headers=headers)

    page.route("**/demo?*", refuse_workers)
    _, _, status = migrate(page, live_server)
    assert status["runtime"] == "main-thread"
    assert status["runtime_note"].startswith("the worker could not start")


def test_the_main_thread_runtime_can_be_asked_for(page: Page, live_server: LiveServer) -> None:
    page.add_init_script(
        "new MutationObserver((changes, observer) => {"
        "  const tag = document.querySelector('script[src*=\"loader.js\"]');"
        "  if (tag) { tag.dataset.runtime = 'main-thread'; observer.disconnect(); }"
        "}).observe(document, { childList: true, subtree: true });"
    )
    _, _, status = migrate(page, live_server)
    assert status["runtime"] == "main-thread"
    assert status["runtime_note"] == "asked for (data-runtime)"
