"""The walking skeleton end to end: localStorage → Pyodide → Flask → PostgreSQL."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e

TOKEN_1 = "ghp_e2eSecretToken000000000000000001"
TOKEN_2 = "ghp_e2eSecretToken000000000000000002"
DRAFT_KEY = "react-hook-form-task-form"
DRAFT = {
    "title": "Add <em>dark mode</em>",
    "description": "« thème sombre » 🌙 — 日本語\n<script>alert(1)</script>",
    "labels": ["ui", "settings"],
    "assignee": None,
    "estimate": {"points": 3, "confidence": 0.8},
}
PREFERENCES = {"theme": "dark", "language": "en-GB", "notifications": {"email": True, "digest": "weekly"}}
PLATFORM_SETTINGS = json.dumps({"region": "eu-west-1", "betaFeatures": ["new-editor"]})


def seed_stores(title: str = "Set up CI") -> dict[str, str]:
    """The seed's sample data: two tasks (one with id task-1), two environments with tokens, a form
    draft, the user's preferences, and two keys lsmigrate does not migrate."""
    tasks = [
        {
            "id": "task-1",
            "title": title,
            "description": "Add a <b>CI</b> pipeline",
            "status": "IN_PROGRESS",
            "mode": "code",
            "hasChanges": True,
            "messages": [{"role": "user", "type": "message", "data": {"text": "please"}}],
            "createdAt": "2024-01-15T10:30:00.000Z",
            "updatedAt": "2024-01-16T08:00:00.000Z",
        },
        {
            "id": "6a8f5c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
            "title": "Write docs",
            "status": "DONE",
            "mode": "ask",
            "createdAt": 1705314600000,
        },
    ]
    environments = [
        {"id": "env-1", "name": "Production", "githubOrganization": "acme", "githubToken": TOKEN_1},
        {"id": "env-2", "name": "Staging", "githubToken": TOKEN_2},
    ]
    return {
        "task-store": json.dumps({"state": {"tasks": tasks, "selectedTaskId": "task-1"}, "version": 0}),
        "environments": json.dumps(
            {"state": {"environments": environments, "activeEnvironmentId": "env-2"}, "version": 0}
        ),
        DRAFT_KEY: json.dumps(DRAFT),
        "user-preferences": json.dumps({"state": PREFERENCES, "version": 0}),
        "theme": "dark",
        "platform-settings": PLATFORM_SETTINGS,
    }


def migrate_in_page(page: Page, server: LiveServer, user: str, stores: dict[str, str]) -> dict[str, Any]:
    """Seed localStorage on the origin, load the demo page, wait for lsmigrate:done."""
    page.goto(f"{server.url}/lsmigrate/static/demo.css")
    page.evaluate("(stores) => { for (const [k, v] of Object.entries(stores)) localStorage.setItem(k, v); }", stores)
    page.add_init_script(
        "window.__lsmigrateDone = new Promise((resolve) => "
        "window.addEventListener('lsmigrate:done', (event) => resolve(event.detail)));"
    )
    page.goto(f"{server.url}/demo?user={user}")
    report: dict[str, Any] = page.evaluate("() => window.__lsmigrateDone")
    return report


def api(page: Page, server: LiveServer, user: str, path: str) -> Any:
    response = page.request.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {server.token(user)}"})
    assert response.ok
    return response.json()


def all_inserted(found: int, cleanup: str = "deleted") -> dict[str, int | bool | str]:
    """A key's report when every record was inserted and the key cleaned up (warnings not counted)."""
    return {
        "found": found,
        "inserted": found,
        "updated": 0,
        "unchanged": 0,
        "quarantined": 0,
        "conflict": 0,
        "kept_server": 0,
        "superseded": 0,
        "cleaned_up": True,
        "cleanup": cleanup,
        "warnings": 0,
    }


def test_seeded_stores_migrate_on_page_load(page: Page, live_server: LiveServer) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    report = migrate_in_page(page, live_server, user, seed_stores())

    assert report["state"] == "done"
    assert report["keys"]["task-store"] | {"warnings": 0} == all_inserted(2, "stripped")
    assert report["keys"]["environments"]["inserted"] == 2
    for key in (DRAFT_KEY, "user-preferences"):
        assert report["keys"][key] | {"warnings": 0} == all_inserted(1)
    assert "platform-settings" not in report["keys"] and "theme" not in report["keys"]
    assert page.evaluate("() => Object.keys(localStorage).sort()") == [
        "environments",
        "lsmigrate:done",
        "platform-settings",
        "task-store",
        "theme",
    ]
    # Stripped: the records taken out, the rest of the key (the UI's selection) byte for byte as it was.
    left = page.evaluate("() => localStorage.getItem('task-store')")
    assert left == json.dumps({"state": {"tasks": [], "selectedTaskId": "task-1"}, "version": 0})
    # The server holds every byte of each key, and gives it back.
    for key in ("task-store", "environments", DRAFT_KEY, "user-preferences"):
        held = api(page, live_server, user, f"/api/migration/keys/{key}")
        assert json.loads(held["value"]) == json.loads(seed_stores()[key]), key
        assert held["as_verified"] is True
    listed = api(page, live_server, user, "/api/migration/keys")["keys"]
    assert [entry["key"] for entry in listed] == sorted([DRAFT_KEY, "environments", "task-store", "user-preferences"])
    assert page.evaluate("() => localStorage.getItem('theme')") == "dark"
    assert page.evaluate("() => localStorage.getItem('platform-settings')") == PLATFORM_SETTINGS
    status = page.evaluate("() => window.lsmigrate.status()")
    assert status == {"state": "done", "report": report, "runtime": "worker", "runtime_note": None}

    rows = live_server.rows("SELECT title, status, priority FROM tasks WHERE user_id = %s ORDER BY title", user)
    assert rows == [("Set up CI", "in_progress", "high"), ("Write docs", "completed", "low")]
    tasks = api(page, live_server, user, "/api/tasks")["tasks"]
    assert {task["title"] for task in tasks} == {"Set up CI", "Write docs"}
    environments = api(page, live_server, user, "/api/environments")["environments"]
    assert sorted(env["name"] for env in environments) == ["Production", "Staging"]
    assert TOKEN_1 not in json.dumps(environments) + json.dumps(report)
    encrypted = live_server.rows("SELECT github_token_encrypted FROM environments WHERE user_id = %s", user)
    assert all(value and TOKEN_1 not in value and TOKEN_2 not in value for (value,) in encrypted)
    expect(page.locator("#task-count")).to_have_text("2")

    drafts = live_server.rows("SELECT key, data FROM form_drafts WHERE user_id = %s", user)
    assert drafts == [(DRAFT_KEY, DRAFT)]
    assert live_server.rows("SELECT data FROM user_preferences WHERE user_id = %s", user) == [(PREFERENCES,)]


def test_the_same_data_again_adds_no_rows(page: Page, live_server: LiveServer) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    migrate_in_page(page, live_server, user, seed_stores())
    again = migrate_in_page(page, live_server, user, seed_stores())

    assert again["keys"]["task-store"]["unchanged"] == 2
    assert again["keys"]["task-store"]["inserted"] == 0
    assert again["keys"]["environments"]["unchanged"] == 2
    assert again["keys"][DRAFT_KEY]["unchanged"] == 1
    assert again["keys"]["user-preferences"]["unchanged"] == 1
    assert live_server.rows("SELECT count(*) FROM tasks WHERE user_id = %s", user) == [(2,)]
    assert live_server.rows("SELECT count(*) FROM environments WHERE user_id = %s", user) == [(2,)]
    assert live_server.rows("SELECT count(*) FROM form_drafts WHERE user_id = %s", user) == [(1,)]
    assert live_server.rows("SELECT count(*) FROM user_preferences WHERE user_id = %s", user) == [(1,)]


def test_a_300_character_title_arrives_whole(page: Page, live_server: LiveServer) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    title = "T" * 150 + "é" * 149 + "!"
    migrate_in_page(page, live_server, user, seed_stores(title))
    assert live_server.rows("SELECT title FROM tasks WHERE user_id = %s AND title LIKE 'T%%'", user) == [(title,)]


def test_the_demo_seed_button_fills_every_store_and_migrates(page: Page, live_server: LiveServer) -> None:
    user = f"e2e-{uuid.uuid4().hex[:8]}"
    page.goto(f"{live_server.url}/demo?user={user}&mode=manual")
    page.fill("#seed-count", "5")
    with page.expect_navigation():
        page.click("#seed")
    seeded = page.evaluate("() => Object.keys(localStorage).sort()")
    assert seeded == ["environments", "platform-settings", DRAFT_KEY, "task-store", "theme", "user-preferences"]
    settings = page.evaluate("() => localStorage.getItem('platform-settings')")

    report = page.evaluate("() => window.lsmigrate.start()")

    assert report["state"] == "done"
    # The seed adds 5 malformed tasks: 3 quarantined (an object title, a list id, null), an older copy
    # of task-1 (superseded), and a title that is markup (inserted, shown as text).
    assert report["keys"]["task-store"]["quarantined"] == 3
    assert report["keys"]["task-store"]["superseded"] == 1
    assert {key: counts["inserted"] for key, counts in report["keys"].items()} == {
        "task-store": 6,
        "environments": 3,
        DRAFT_KEY: 1,
        "user-preferences": 1,
    }
    # task-store holds quarantined records: kept whole; environments stripped of its records.
    assert page.evaluate("() => Object.keys(localStorage).sort()") == [
        "environments",
        "lsmigrate:done",
        "platform-settings",
        "task-store",
        "theme",
    ]
    assert report["keys"]["task-store"]["kept"]["reason"] == "quarantined_records"
    assert json.loads(page.evaluate("() => localStorage.getItem('environments')"))["state"]["environments"] == []
    assert page.evaluate("() => localStorage.getItem('platform-settings')") == settings
    [(key, draft)] = live_server.rows("SELECT key, data FROM form_drafts WHERE user_id = %s", user)
    assert key == DRAFT_KEY and draft["title"] == "Add <em>dark mode</em> to the settings page"
    [(preferences,)] = live_server.rows("SELECT data FROM user_preferences WHERE user_id = %s", user)
    assert preferences["theme"] == "dark"
    expect(page.locator("#env-count")).to_have_text("3")


def test_a_page_with_nothing_to_migrate_downloads_no_runtime(page: Page, live_server: LiveServer) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{live_server.url}/demo?user=idle-user")
    expect(page.locator("#task-count")).to_have_text("0")
    assert page.evaluate("() => window.lsmigrate.status().state") == "idle"
    assert not [url for url in requests if "pyodide" in url or url.endswith(".whl")]
