"""The page's migration runner, run on CPython against the real app (PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flask.testing import FlaskClient

from lsmigrate.browser.runner import Send, run_migration


class FakeLocalStorage:
    """localStorage as a dict; `on_get` lets a test rewrite a key behind the runner's back."""

    def __init__(self, items: dict[str, str]) -> None:
        self.items = dict(items)

    def keys(self) -> list[str]:
        return list(self.items)

    def get(self, key: str) -> str | None:
        return self.items.get(key)

    def remove(self, key: str) -> None:
        del self.items[key]


def client_sender(client: FlaskClient, headers: dict[str, str], before: Any = None) -> Send:
    async def send(method: str, path: str, body: Any) -> tuple[int, Any]:
        if before is not None:
            before(method, path)
        response = client.open(f"/api/migration{path}", method=method, json=body, headers=headers)
        return response.status_code, response.json

    return send


def zustand(name: str, records: list[Any]) -> str:
    return json.dumps({"state": {name: records}, "version": 0})


def run(storage: FakeLocalStorage, send: Send, batch_size: int = 2) -> dict[str, Any]:
    events: list[tuple[str, dict[str, Any]]] = []
    report = asyncio.run(run_migration(storage, send, lambda n, d: events.append((n, d)), batch_size=batch_size))
    report["events"] = events
    return report


def test_every_store_is_uploaded_in_batches_and_cleaned_up(client, auth) -> None:
    storage = FakeLocalStorage(
        {
            "task-store": zustand("tasks", [{"id": f"t{i}", "title": f"Task {i}"} for i in range(5)]),
            "environments": zustand("environments", [{"id": "e", "name": "Prod"}]),
            "theme": "dark",
        }
    )
    report = run(storage, client_sender(client, auth("alice")))
    assert report["state"] == "done"
    assert report["keys"]["task-store"]["inserted"] == 5
    assert report["keys"]["task-store"]["cleaned_up"] is True
    assert storage.items == {"theme": "dark"}
    assert report["unknown_keys"] == ["theme"]
    uploads = [detail for name, detail in report["events"] if detail["phase"] == "upload"]
    assert [detail["done"] for detail in uploads] == [1, 3, 5, 6]


def test_a_corrupt_store_is_reported_and_left_alone_while_the_others_migrate(client, auth) -> None:
    storage = FakeLocalStorage(
        {"task-store": "{not json", "environments": zustand("environments", [{"id": "e", "name": "Prod"}])}
    )
    report = run(storage, client_sender(client, auth("alice")))
    assert report["state"] == "done"
    assert report["errors"] == [
        {"key": "task-store", "code": "invalid_json", "expected": "JSON text", "found": report["errors"][0]["found"]}
    ]
    assert storage.items == {"task-store": "{not json"}


def test_a_key_the_app_rewrote_during_the_migration_is_not_deleted(client, auth) -> None:
    storage = FakeLocalStorage({"task-store": zustand("tasks", [{"id": "a", "title": "A"}])})

    def rewrite_before_complete(method: str, path: str) -> None:
        if path.endswith("/complete"):
            storage.items["task-store"] = zustand("tasks", [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}])

    report = run(storage, client_sender(client, auth("alice"), rewrite_before_complete))
    assert report["state"] == "done"
    assert report["keys"]["task-store"]["cleaned_up"] is False
    assert "task-store" in storage.items


def test_a_refused_step_fails_the_run_and_deletes_nothing(client) -> None:
    storage = FakeLocalStorage({"task-store": zustand("tasks", [{"id": "a"}])})
    report = run(storage, client_sender(client, {"Authorization": "Bearer forged"}))
    assert report["state"] == "failed"
    assert report["error"]["code"] == "invalid_token"
    assert "task-store" in storage.items


def test_nothing_to_migrate_opens_no_session(client, auth) -> None:
    calls: list[str] = []
    report = run(FakeLocalStorage({"theme": "dark"}), client_sender(client, auth("a"), lambda m, p: calls.append(p)))
    assert report["state"] == "done"
    assert report["keys"] == {}
    assert calls == []
