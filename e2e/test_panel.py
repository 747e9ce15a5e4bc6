"""The <lsmigrate-panel> on the demo page: manual mode, progress, the final state, restore, safe rendering, CSP.

Every test saves screenshots of the states it passes through to
test-results/screenshots/ (CI keeps test-results/ as its output folder).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import LiveServer, seed
from tests.fixtures_services import PostgresServer, RedisServer

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-results" / "screenshots"
XSS_TITLES = [
    "<script>window.__xss = 1</script>",
    '<img src=x onerror="window.__xss = 2">',
    "javascript:window.__xss = 3",
    '"><svg onload="window.__xss = 4">',
]
# Counts what must never happen: a dialog, a CSP violation, a script the corpus injected.
WATCH = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation', (event) =>"
    "  window.__violations.push(event.violatedDirective + ' ' + event.blockedURI));"
)


def shot(page: Page, name: str) -> None:
    """The page as the user sees it, and the panel on its own."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    panel(page).screenshot(path=str(SCREENSHOTS / f"{name}-panel.png"))


def tasks_store(titles: list[str]) -> str:
    tasks = [
        {"id": f"task-{i}", "title": title, "description": title, "status": "TODO"} for i, title in enumerate(titles)
    ]
    return json.dumps({"state": {"tasks": tasks}, "version": 0})


def panel(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("lsmigrate-panel")


def test_manual_mode_waits_for_the_button_then_shows_progress_and_the_final_state(
    page: Page, live_server: LiveServer
) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    seed(page, live_server, {"task-store": tasks_store([f"Task {i}" for i in range(1500)]), "theme": "dark"})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.add_init_script(WATCH)
    page.goto(f"{live_server.url}/demo?user={user}&mode=manual&batch=250")
    expect(panel(page).locator(".badge")).to_have_text("Idle")
    expect(panel(page).locator("tbody th")).to_have_text(["task-store"])  # found before Pyodide, with its size
    expect(panel(page).locator("tbody td").nth(0)).to_contain_text("KB")
    assert not [url for url in requests if url.endswith((".wasm", "worker.js", "runtime.js"))]
    shot(page, "panel-1-manual-before")

    panel(page).get_by_role("button", name="Migrate now").click()
    expect(panel(page).locator(".badge")).to_have_text("Loading")
    expect(panel(page).locator(".status")).to_have_text("Loading the migration runtime…")
    expect(panel(page).get_by_role("button", name="Migrate now")).to_be_disabled()
    shot(page, "panel-1b-loading")
    expect(panel(page).locator(".badge")).to_have_text("Done", timeout=60_000)
    progress = panel(page).get_by_role("progressbar")
    expect(progress).to_have_attribute("aria-valuenow", "100")
    expect(panel(page).locator(".status")).to_contain_text("Removed from this browser: task-store")
    expect(panel(page).locator("tbody tr").first).to_contain_text("1500")
    expect(panel(page).locator(".backups li")).to_have_count(1)
    expect(page.locator("#task-count")).to_have_text("1500")
    shot(page, "panel-2-manual-done")
    assert page.evaluate("() => window.__violations") == []


def test_restore_from_a_backup_in_the_panel_puts_the_keys_back(page: Page, live_server: LiveServer) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    stores = {"task-store": tasks_store(["Keep me", "And me"])}
    seed(page, live_server, stores)
    page.goto(f"{live_server.url}/demo?user={user}")
    expect(panel(page).locator(".badge")).to_have_text("Done", timeout=60_000)
    assert page.evaluate("() => localStorage.getItem('task-store')") == tasks_store([])
    panel(page).locator(".backups li").first.get_by_role("button", name="Restore").click()
    expect(panel(page).locator(".status")).to_contain_text("Restored from the backup: task-store")
    assert page.evaluate("() => localStorage.getItem('task-store')") == stores["task-store"]
    shot(page, "panel-3-restored")


def test_a_cleared_browser_is_restored_from_the_server_in_the_panel(page: Page, live_server: LiveServer) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    task_store = json.dumps({"state": {"tasks": json.loads(tasks_store(["Mine"]))["state"]["tasks"], "sel": "x"}})
    stores = {"task-store": task_store, "react-hook-form-task-form": json.dumps({"title": "draft"})}
    seed(page, live_server, stores)
    page.goto(f"{live_server.url}/demo?user={user}")
    expect(panel(page).locator(".badge")).to_have_text("Done", timeout=60_000)
    # A new device, or the browser's data cleared: nothing of the user's is left here.
    page.evaluate("() => localStorage.clear()")
    panel(page).get_by_role("button", name="Restore this browser from the server").click()
    expect(panel(page).locator(".status")).to_contain_text(
        "Restored from the server: react-hook-form-task-form, task-store"
    )
    restored = page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")
    assert {key: json.loads(value) for key, value in restored.items() if not key.startswith("lsmigrate:")} == {
        key: json.loads(value) for key, value in stores.items()
    }
    # Remembered as migrated: the next page load has nothing to do.
    assert page.evaluate("() => window.lsmigrate.needsMigration()") is False


def test_record_content_renders_as_text_never_as_markup(page: Page, live_server: LiveServer) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    seed(page, live_server, {"task-store": tasks_store(XSS_TITLES)})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(WATCH)
    page.goto(f"{live_server.url}/demo?user={user}")
    expect(panel(page).locator(".badge")).to_have_text("Done", timeout=60_000)
    expect(page.locator("#task-count")).to_have_text(str(len(XSS_TITLES)))
    for title in XSS_TITLES:
        expect(page.locator("#tasks").get_by_text(title, exact=True)).to_have_count(1)
    assert dialogs == []
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("img[src=x], svg[onload]").count() == 0
    assert page.evaluate("() => window.__violations") == []
    shot(page, "panel-4-xss-as-text")


@pytest.fixture(scope="module")
def asking_server(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A second demo server on the same database whose tasks store asks the user about every conflict."""
    server = LiveServer(
        postgres, redis_server, tmp_path_factory.mktemp("asking"), LSMIGRATE_CONFLICT_POLICIES='{"tasks": "ask"}'
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_conflict_is_shown_side_by_side_resolved_from_the_panel_and_the_key_cleaned_up(
    page: Page, asking_server: LiveServer
) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    first = [{"id": "task-1", "title": "Server title", "status": "TODO", "updatedAt": "2024-01-01T00:00:00.000Z"}]
    seed(page, asking_server, {"task-store": json.dumps({"state": {"tasks": first}, "version": 0})})
    page.goto(f"{asking_server.url}/demo?user={user}")
    expect(panel(page).locator(".badge")).to_have_text("Done", timeout=60_000)

    edited = [{**first[0], "title": "Edited <b>here</b>", "updatedAt": "2024-02-01T00:00:00.000Z"}]
    seed(page, asking_server, {"task-store": json.dumps({"state": {"tasks": edited}, "version": 0})})
    page.goto(f"{asking_server.url}/demo?user={user}")
    expect(panel(page).locator(".badge")).to_have_text("Done", timeout=60_000)
    card = panel(page).locator(".conflict")
    expect(card).to_have_count(1)
    expect(card.locator("tr", has_text="title")).to_contain_text('"Edited <b>here</b>"')
    expect(card.locator("tr", has_text="title")).to_contain_text('"Server title"')
    assert page.evaluate("() => localStorage.getItem('task-store')") is not None  # kept while the conflict is open
    shot(page, "panel-5-conflict")

    card.get_by_role("button", name="Keep mine").click()
    expect(panel(page).locator(".status")).to_contain_text("Removed from this browser: task-store")
    # Found, inserted, updated, unchanged, quarantined, in conflict: the ledger's counts after the resolution.
    expect(panel(page).locator("tbody tr").first.locator("td")).to_have_text(
        ["288 B", "1", "0", "1", "0", "0", "0", "records removed"]
    )
    assert page.evaluate("() => localStorage.getItem('task-store')") == tasks_store([])
    assert asking_server.rows("SELECT title FROM tasks WHERE user_id = %s", user) == [("Edited <b>here</b>",)]
    shot(page, "panel-6-conflict-resolved")


def test_the_demo_seed_with_malformed_records_shows_the_quarantine_with_reasons(
    page: Page, live_server: LiveServer
) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    page.goto(f"{live_server.url}/demo?user={user}&mode=manual")
    page.fill("#seed-count", "20")
    with page.expect_navigation():
        page.click("#seed")
    expect(panel(page).locator("tbody th")).to_have_count(4)  # the four stores found, before anything loads
    shot(page, "panel-7-seeded")
    panel(page).get_by_role("button", name="Dry run").click()
    expect(panel(page).locator(".status")).to_contain_text("Dry run finished: nothing was changed.", timeout=60_000)
    assert page.evaluate("() => localStorage.getItem('task-store')") is not None
    panel(page).get_by_role("button", name="Migrate now").focus()
    page.keyboard.press("Enter")  # reachable and usable from the keyboard
    expect(panel(page).locator(".status")).to_contain_text("Removed from this browser", timeout=60_000)
    items = panel(page).locator(".quarantine li")
    expect(items).to_have_count(4)  # an object title, a list id, null, and the superseded older copy of task-1
    expect(panel(page).locator(".quarantine")).to_contain_text("expected text, found object")
    expect(panel(page).locator(".quarantine")).to_contain_text("a newer version of this record came in the session")
    shot(page, "panel-8-quarantine")


def test_keep_all_the_servers_resolves_every_conflict_and_cleans_up(page: Page, asking_server: LiveServer) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    first = [
        {"id": f"task-{i}", "title": f"Server {i}", "status": "TODO", "updatedAt": "2024-01-01T00:00:00.000Z"}
        for i in range(2)
    ]
    seed(page, asking_server, {"task-store": json.dumps({"state": {"tasks": first}, "version": 0})})
    page.goto(f"{asking_server.url}/demo?user={user}")
    expect(panel(page).locator(".badge")).to_have_text("Done", timeout=60_000)
    edited = [{**task, "title": f"Local {i}", "updatedAt": "2024-02-01T00:00:00.000Z"} for i, task in enumerate(first)]
    seed(page, asking_server, {"task-store": json.dumps({"state": {"tasks": edited}, "version": 0})})
    page.goto(f"{asking_server.url}/demo?user={user}")
    expect(panel(page).locator(".conflict")).to_have_count(2, timeout=60_000)
    panel(page).get_by_role("button", name="Keep all the server's").click()
    expect(panel(page).locator(".status")).to_contain_text("Removed from this browser: task-store")
    expect(panel(page).locator(".conflict")).to_have_count(0)
    titles = asking_server.rows("SELECT title FROM tasks WHERE user_id = %s ORDER BY title", user)
    assert titles == [("Server 0",), ("Server 1",)]
    assert page.evaluate("() => localStorage.getItem('task-store')") == tasks_store([])


def test_another_users_backups_are_listed_as_theirs_and_the_panel_says_how_long_backups_are_kept(
    page: Page, live_server: LiveServer
) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    seed(page, live_server, {"task-store": tasks_store(["Mine"])})
    # Another user of this shared browser left a backup behind.
    page.evaluate(
        "async () => (await import('/lsmigrate/static/backups.js'))"
        ".saveBackup({ 'task-store': 'theirs', 'their-secret-key-name': 'x' }, { user_digest: 'b'.repeat(64) })"
    )
    page.goto(f"{live_server.url}/demo?user={user}")
    expect(panel(page).locator(".badge")).to_have_text("Done", timeout=60_000)
    expect(panel(page).locator(".retention")).to_have_text("Backups are kept 30 days in this browser, then deleted.")
    expect(panel(page).locator(".backups li")).to_have_count(2)
    theirs = panel(page).locator('.backups li[data-owner="another_user"]')
    expect(theirs).to_contain_text("another user's backup")
    expect(theirs).not_to_contain_text("their-secret-key-name")
    expect(theirs.get_by_role("button")).to_have_count(0)
    mine = panel(page).locator('.backups li[data-owner="you"]')
    expect(mine).to_contain_text("task-store")
    expect(mine.get_by_role("button")).to_have_text(["Restore", "Download"])
    shot(page, "panel-9-another-users-backup")
