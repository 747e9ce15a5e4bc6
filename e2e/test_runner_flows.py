"""What a real browser does to a migration: reloads, lost networks, outages, two tabs, failing storage, rewrites.

Each test seeds localStorage on the demo's origin, loads the demo page (the
loader in automatic mode, small batches so there is a "middle"), interferes,
and checks what matters: the rows in PostgreSQL, the keys left in
localStorage, the report.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from playwright.sync_api import BrowserContext, Page

from e2e.conftest import LiveServer, seed

pytestmark = pytest.mark.e2e

DONE_PROMISE = (
    "window.__lsmigrateEvents = [];"
    "for (const name of ['lsmigrate:progress', 'lsmigrate:done', 'lsmigrate:error', 'lsmigrate:conflict'])"
    "  window.addEventListener(name, (event) => window.__lsmigrateEvents.push([name, event.detail]));"
    "window.__lsmigrateOutcome = new Promise((resolve) => {"
    "  window.addEventListener('lsmigrate:done', (event) => resolve(event.detail));"
    "  window.addEventListener('lsmigrate:error', (event) => resolve(event.detail));"
    "});"
)


def user_id() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


def tasks_store(count: int, title: str = "Task") -> str:
    tasks = [
        {"id": f"task-{i}", "title": f"{title} {i}", "status": "TODO", "createdAt": "2024-01-01T00:00:00.000Z"}
        for i in range(count)
    ]
    return json.dumps({"state": {"tasks": tasks}, "version": 0})


def open_demo(page: Page, server: LiveServer, user: str, query: str = "") -> None:
    page.add_init_script(DONE_PROMISE)
    page.goto(f"{server.url}/demo?user={user}{query}")


def outcome(page: Page) -> dict[str, Any]:
    report: dict[str, Any] = page.evaluate("() => window.__lsmigrateOutcome")
    return report


def wait_for_upload(page: Page, done: int) -> None:
    """Until the page has reported `done` records uploaded."""
    page.wait_for_function(
        "(done) => window.__lsmigrateEvents.some(([name, d]) => d && d.phase === 'upload' && d.done >= done)",
        arg=done,
        timeout=60_000,
    )


def upload_under_way(page: Page, server: LiveServer, records: int, uploaded: int) -> str:
    """Seed `records` tasks, open the demo for a new user (batches of 100), wait until `uploaded` went up."""
    user = user_id()
    seed(page, server, {"task-store": tasks_store(records)})
    open_demo(page, server, user, "&batch=100")
    wait_for_upload(page, uploaded)
    return user


def task_count(server: LiveServer, user: str) -> tuple[int, int]:
    """(rows, distinct ids) of the user's tasks."""
    [(rows, ids)] = server.rows("SELECT count(*), count(DISTINCT id) FROM tasks WHERE user_id = %s", user)
    return rows, ids


def sessions_of(server: LiveServer, user: str) -> list[tuple[str, bool]]:
    return server.rows("SELECT status, dry_run FROM migration_sessions WHERE user_id = %s ORDER BY created_at", user)


STRIPPED_TASKS = {"state": {"tasks": []}, "version": 0}


def local_keys(page: Page) -> list[str]:
    """The keys left in localStorage that still hold something: not lsmigrate's own, not a stripped task-store."""
    items: dict[str, str] = page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")
    return sorted(k for k, v in items.items() if not k.startswith("lsmigrate:") and not _stripped_tasks(v))


def _stripped_tasks(value: str) -> bool:
    try:
        return bool(json.loads(value) == STRIPPED_TASKS)
    except ValueError:
        return False


def test_a_reload_in_the_middle_resumes_and_counts_every_row_once(page: Page, live_server: LiveServer) -> None:
    user = upload_under_way(page, live_server, 1200, 300)
    page.reload()
    report = outcome(page)
    assert report["state"] == "done", report
    assert report["keys"]["task-store"]["cleaned_up"] is True
    assert task_count(live_server, user) == (1200, 1200)
    assert sessions_of(live_server, user) == [("verified", False)]  # the same session, resumed
    [(ledger,)] = live_server.rows(
        "SELECT count(*) FROM migration_ledger l JOIN migration_sessions s ON s.id = l.session_id WHERE s.user_id = %s",
        user,
    )
    assert ledger == 1200
    assert local_keys(page) == []


def test_offline_in_the_middle_waits_and_completes_when_back(
    page: Page, context: BrowserContext, live_server: LiveServer
) -> None:
    user = upload_under_way(page, live_server, 800, 200)
    context.set_offline(True)
    page.wait_for_function(
        "() => window.__lsmigrateEvents.some(([n, d]) => d && d.waiting && d.waiting.reason === 'offline')",
        timeout=30_000,
    )
    assert page.evaluate("() => window.lsmigrate.status().state") == "running"
    context.set_offline(False)
    report = outcome(page)
    assert report["state"] == "done", report
    assert task_count(live_server, user) == (800, 800)
    assert local_keys(page) == []


@pytest.fixture
def database_outage(live_server: LiveServer) -> Iterator[Any]:
    """A function that takes the app's database away (new connections refused, its backends ended); back after."""
    conninfo = live_server.postgres.conninfo.replace("dbname=lsmigrate", "dbname=postgres")

    def set_allowed(allowed: bool) -> None:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f"ALTER DATABASE lsmigrate ALLOW_CONNECTIONS {'true' if allowed else 'false'}")
            if not allowed:
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = 'lsmigrate' AND pid <> pg_backend_pid()"
                )

    try:
        yield set_allowed
    finally:
        set_allowed(True)


def test_a_database_outage_answers_503_and_the_page_retries_until_it_is_over(
    page: Page, live_server: LiveServer, database_outage: Any
) -> None:
    user = upload_under_way(page, live_server, 600, 100)
    database_outage(False)
    # The outage lasts a while: the page waits (the server's Retry-After), tries again, waits again.
    page.wait_for_function(
        "() => window.__lsmigrateEvents.filter(([n, d]) => d && d.waiting"
        " && d.waiting.reason === 'database_unavailable').length >= 2",
        timeout=30_000,
    )
    assert page.evaluate("() => window.lsmigrate.status().state") == "running"
    database_outage(True)
    report = outcome(page)
    assert report["state"] == "done", report
    waits = page.evaluate(
        "() => window.__lsmigrateEvents.filter(([n, d]) => d && d.waiting).map(([n, d]) => d.waiting.seconds)"
    )
    assert waits and all(seconds == 2 for seconds in waits)  # the server's Retry-After, honoured
    assert task_count(live_server, user) == (600, 600)


def test_two_tabs_opened_at_once_make_one_session_and_report_the_same_outcome(
    context: BrowserContext, live_server: LiveServer
) -> None:
    user = user_id()
    first, second = context.new_page(), context.new_page()
    seed(first, live_server, {"task-store": tasks_store(300)})
    for tab in (first, second):
        tab.add_init_script(DONE_PROMISE)
    url = f"{live_server.url}/demo?user={user}&batch=100"
    first.goto(url, wait_until="commit")
    second.goto(url, wait_until="commit")
    reports = [outcome(first), outcome(second)]
    assert [report["state"] for report in reports] == ["done", "done"]
    assert reports[0]["session_id"] == reports[1]["session_id"]
    assert sessions_of(live_server, user) == [("verified", False)]
    assert task_count(live_server, user) == (300, 300)
    booted = [
        tab.evaluate("() => window.lsmigrate.memory().then((memory) => memory.booted)") for tab in (first, second)
    ]
    assert sorted(booted) == [False, True]  # only the tab that ran loaded Pyodide


def test_a_backup_that_cannot_be_written_stops_the_run_before_anything_is_sent(
    page: Page, live_server: LiveServer
) -> None:
    user = user_id()
    stores = {"task-store": tasks_store(50), "environments": json.dumps({"state": {"environments": []}, "version": 0})}
    seed(page, live_server, stores)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": live_server.url, "quotaSize": 1024})
    try:
        open_demo(page, live_server, user)
        report = outcome(page)
    finally:
        cdp.send("Storage.overrideQuotaForOrigin", {"origin": live_server.url})
    assert report["state"] == "failed"
    assert report["error"]["code"] == "backup_failed"
    assert "quota" in report["error"]["message"].lower()
    assert sessions_of(live_server, user) == []  # nothing reached the server
    assert page.evaluate("() => localStorage.getItem('task-store')") == stores["task-store"]


def test_a_key_the_page_rewrites_during_the_migration_is_kept_then_migrated_again(
    page: Page, live_server: LiveServer
) -> None:
    user = user_id()
    seed(page, live_server, {"task-store": tasks_store(300)})
    page.add_init_script(
        "window.addEventListener('lsmigrate:progress', (event) => {"
        "  if (event.detail.phase !== 'upload' || window.__rewrote) return;"
        "  window.__rewrote = true;"
        "  const store = JSON.parse(localStorage.getItem('task-store'));"
        "  store.state.tasks.push({id: 'added-meanwhile', title: 'Added while migrating'});"
        "  localStorage.setItem('task-store', JSON.stringify(store));"
        "});"
    )
    open_demo(page, live_server, user, "&batch=100")
    report = outcome(page)
    assert report["state"] == "done", report
    assert report["rounds"] == 2
    assert report["keys"]["task-store"]["cleaned_up"] is True
    assert report["keys"]["task-store"]["inserted"] == 1 and report["keys"]["task-store"]["unchanged"] == 300
    assert task_count(live_server, user) == (301, 301)
    assert live_server.rows("SELECT title FROM tasks WHERE user_id = %s AND title LIKE 'Added%%'", user) == [
        ("Added while migrating",)
    ]
    assert local_keys(page) == []


def test_a_backup_restores_byte_identical_values(page: Page, live_server: LiveServer) -> None:
    user = user_id()
    stores = {
        "task-store": tasks_store(20, title="Ünïcødé 🐍 \u2028"),
        "react-hook-form-task-form": json.dumps({"title": "draft", "note": "tab\there"}),
    }
    seed(page, live_server, stores)
    open_demo(page, live_server, user)
    assert outcome(page)["state"] == "done"
    assert local_keys(page) == []
    backups = page.evaluate("() => window.lsmigrate.backups()")
    assert sorted(entry["key"] for entry in backups[0]["keys"]) == sorted(stores)
    restored = page.evaluate("(id) => window.lsmigrate.restore(id)", backups[0]["id"])
    assert sorted(restored) == sorted(stores)
    for key, value in stores.items():
        assert page.evaluate("(key) => localStorage.getItem(key)", key) == value


def test_corrupt_json_is_reported_and_left_alone_while_the_other_stores_migrate(
    page: Page, live_server: LiveServer
) -> None:
    user = user_id()
    environments = json.dumps({"state": {"environments": [{"id": "env-1", "name": "Prod"}]}, "version": 0})
    seed(page, live_server, {"task-store": "{not json", "environments": environments})
    open_demo(page, live_server, user)
    report = outcome(page)
    assert report["state"] == "done", report
    assert [(error["key"], error["code"]) for error in report["errors"]] == [("task-store", "invalid_json")]
    assert report["keys"]["environments"]["cleaned_up"] is True
    assert page.evaluate("() => localStorage.getItem('task-store')") == "{not json"
    assert live_server.rows("SELECT name FROM environments WHERE user_id = %s", user) == [("Prod",)]
    # The marker remembers the corrupt key as it is: the next page load downloads nothing.
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.reload()
    page.wait_for_load_state("networkidle")
    assert not [url for url in requests if url.endswith((".wasm", ".whl", "worker.js", "runtime.js"))]


def test_a_dry_run_reports_what_would_happen_and_changes_nothing(page: Page, live_server: LiveServer) -> None:
    user = user_id()
    stores = {"task-store": tasks_store(30)}
    seed(page, live_server, stores)
    open_demo(page, live_server, user, "&mode=manual")
    report = page.evaluate("() => window.lsmigrate.start({dryRun: true})")
    assert report["state"] == "done" and report["dry_run"] is True
    assert report["keys"]["task-store"]["inserted"] == 30
    assert report["keys"]["task-store"]["cleaned_up"] is False
    assert page.evaluate("() => localStorage.getItem('task-store')") == stores["task-store"]
    assert page.evaluate("() => localStorage.getItem('lsmigrate:done')") is None
    assert task_count(live_server, user) == (0, 0)
    assert sessions_of(live_server, user) == [("verified", True)]


def test_after_a_finished_migration_the_next_page_load_downloads_nothing(page: Page, live_server: LiveServer) -> None:
    user = user_id()
    seed(page, live_server, {"task-store": tasks_store(5)})
    open_demo(page, live_server, user)
    assert outcome(page)["state"] == "done"
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.reload()
    page.wait_for_load_state("networkidle")
    assert not [url for url in requests if "pyodide" in url or url.endswith(".whl") or "backups.js" in url]
    assert page.evaluate("() => window.lsmigrate.status().state") == "idle"


def test_another_user_on_the_same_browser_never_resumes_or_uploads_an_interrupted_run(
    page: Page, live_server: LiveServer
) -> None:
    alice = upload_under_way(page, live_server, 1200, 300)
    page.goto(f"{live_server.url}/lsmigrate/static/demo.css")  # Alice's tab goes away mid-upload
    alices_rows = task_count(live_server, alice)[0]
    assert 0 < alices_rows < 1200
    # Alice signs out (the app clears localStorage); Bob signs in on the same browser with tasks of his own.
    bob = user_id()
    seed(page, live_server, {"task-store": tasks_store(5, title="Bob's")})
    open_demo(page, live_server, bob, "&batch=100")
    report = outcome(page)
    assert report["state"] == "done", report
    assert live_server.rows("SELECT count(*) FROM tasks WHERE user_id = %s AND title LIKE 'Bob''s %%'", bob) == [(5,)]
    assert task_count(live_server, bob) == (5, 5)  # nothing of Alice's
    assert task_count(live_server, alice)[0] == alices_rows
    assert sessions_of(live_server, alice) == [("open", False)]  # left as it was: not Bob's to withdraw
    owners = page.evaluate("async () => (await window.lsmigrate.backups()).map((b) => b.owner)")
    assert owners == ["you", "another_user"]  # Bob's, then Alice's


def test_a_title_cut_in_the_middle_of_an_emoji_and_a_key_named_so_do_not_block_the_user(
    page: Page, live_server: LiveServer
) -> None:
    user = user_id()
    seed(page, live_server, {})
    # Made in the page: "Launch 😀".slice(0, 8) keeps the emoji's high surrogate alone, an ordinary JS string.
    page.evaluate(
        """() => {
          const tasks = [{ id: 'task-cut', title: 'Launch 😀'.slice(0, 8) }, { id: 'task-ok', title: 'Launch' }];
          localStorage.setItem('task-store', JSON.stringify({ state: { tasks }, version: 0 }));
          localStorage.setItem('form-' + '😀'.slice(0, 1) + '-draft', JSON.stringify({ title: 'a draft' }));
          localStorage.setItem('form-draft-1', JSON.stringify({ title: 'another draft' }));
        }"""
    )
    open_demo(page, live_server, user)
    report = outcome(page)
    assert report["state"] == "done", report
    found = report["keys"]["task-store"]
    assert (found["inserted"], found["quarantined"]) == (1, 1)
    # The server got the surrogate intact and set the record aside losslessly.
    check = """async () => {
      const session = window.lsmigrate.status().report.session_id;
      const { records } = await window.lsmigrate.api('GET', `/sessions/${session}/quarantine`);
      return records.map((r) => [r.raw.title === 'Launch 😀'.slice(0, 8), r.reasons.map((reason) => reason.code)]);
    }"""
    assert page.evaluate(check) == [[True, ["unstorable_text"]]]
    [error] = report["errors"]
    assert error["code"] == "unstorable_key"
    assert page.evaluate("(key) => key === 'form-' + '😀'.slice(0, 1) + '-draft'", error["key"]) is True
    keys = page.evaluate("() => Object.keys(localStorage).filter((k) => k.startsWith('form')).length")
    assert keys == 1  # the key no column can name is kept; the other draft migrated and was deleted
    assert live_server.rows("SELECT key FROM form_drafts WHERE user_id = %s", user) == [("form-draft-1",)]
    # Remembered as left: the next page load downloads nothing.
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.reload()
    page.wait_for_load_state("networkidle")
    assert not [url for url in requests if url.endswith((".wasm", ".whl", "worker.js", "runtime.js"))]


def test_a_record_nested_as_deep_as_the_page_reads_with_a_nul_is_set_aside(page: Page, live_server: LiveServer) -> None:
    user = user_id()
    deep: Any = "NUL\u0000"
    for level in range(505):  # with the envelope and the list: 508 of the 512 levels the page reads
        deep = [deep] if level % 2 else {"k": deep}
    tasks = [{"id": "task-deep", "title": "Deep", "messages": deep}, {"id": "task-ok", "title": "Flat"}]
    seed(page, live_server, {"task-store": json.dumps({"state": {"tasks": tasks}, "version": 0})})
    open_demo(page, live_server, user)
    report = outcome(page)
    assert report["state"] == "done", report
    found = report["keys"]["task-store"]
    assert (found["inserted"], found["quarantined"]) == (1, 1)
    [(reasons,)] = live_server.rows("SELECT reasons FROM quarantine WHERE user_id = %s", user)
    assert [reason["code"] for reason in reasons] == ["unstorable_text"]
