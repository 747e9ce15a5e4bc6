"""The page's migration runner, run on CPython against the real app (PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flask.testing import FlaskClient

from lsmigrate.browser.retries import Reply, Send
from lsmigrate.browser.runner import Host, Options, run_migration
from tests.migration_helpers import db_rows


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


class MemoryBackups:
    """IndexedDB as dicts: the backups by id, and the checkpoint."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.saved: dict[str, dict[str, str]] = {}
        self.checkpoint: dict[str, Any] | None = None

    async def save(self, values: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        backup_id = f"b{len(self.saved)}"
        self.saved[backup_id] = dict(values)
        return {"id": backup_id, "meta": meta}

    async def values(self, backup_id: str) -> dict[str, str]:
        return dict(self.saved[backup_id])

    async def load_checkpoint(self) -> dict[str, Any] | None:
        return None if self.checkpoint is None else json.loads(json.dumps(self.checkpoint))

    async def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.checkpoint = json.loads(json.dumps(checkpoint))

    async def clear_checkpoint(self) -> None:
        self.checkpoint = None


class FakePacing:
    """Time that passes only when asked to, and a network that is online unless told otherwise."""

    def __init__(self) -> None:
        self.clock = 0.0
        self.sleeps: list[float] = []
        self.is_online = True

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock += seconds

    def online(self) -> bool:
        return self.is_online

    async def until_online(self) -> None:
        self.is_online = True

    def now(self) -> float:
        self.clock += 0.001
        return self.clock

    async def breathe(self) -> None:
        await asyncio.sleep(0)


def client_sender(client: FlaskClient, headers: dict[str, str], before: Any = None) -> Send:
    async def send(method: str, path: str, body: Any) -> Reply:
        if before is not None:
            before(method, path)
        response = client.open(f"/api/migration{path}", method=method, json=body, headers=headers)
        retry_after = response.headers.get("Retry-After")
        return Reply(response.status_code, response.json, None if retry_after is None else float(retry_after))

    return send


def zustand(name: str, records: list[Any]) -> str:
    return json.dumps({"state": {name: records}, "version": 0})


def run(
    storage: FakeLocalStorage, send: Send, batch_size: int = 2, backups: MemoryBackups | None = None, **options: Any
) -> dict[str, Any]:
    events: list[tuple[str, dict[str, Any]]] = []
    host = Host(storage, send, lambda n, d: events.append((n, d)), backups or MemoryBackups(), FakePacing())
    report = asyncio.run(run_migration(host, Options(batch_size=batch_size, **options)))
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
    uploads = [detail for name, detail in report["events"] if detail.get("phase") == "upload"]
    assert [detail["done"] for detail in uploads] == [0, 1, 3, 5, 6]


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


def test_a_key_the_app_rewrote_during_the_migration_is_kept_and_migrated_again(client, auth, postgres) -> None:
    first = zustand("tasks", [{"id": "a", "title": "A"}])
    rewritten = zustand("tasks", [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}])
    storage = FakeLocalStorage({"task-store": first})
    removals: list[str] = []

    def rewrite_before_the_first_complete(method: str, path: str) -> None:
        if path.endswith("/complete") and storage.items["task-store"] == first:
            storage.items["task-store"] = rewritten  # Zustand writes the whole store on every set()

    original_remove = storage.remove
    storage.remove = lambda key: (removals.append(storage.items[key]), original_remove(key))  # type: ignore[method-assign]
    report = run(storage, client_sender(client, auth("alice"), rewrite_before_the_first_complete))
    assert report["state"] == "done"
    assert report["rounds"] == 2
    assert removals == [rewritten]  # never the value that held only what the first round sent
    assert report["keys"]["task-store"] | {"warnings": 0} == {
        "found": 2,
        "warnings": 0,
        "cleaned_up": True,
        "inserted": 1,
        "updated": 0,
        "unchanged": 1,
        "quarantined": 0,
        "conflict": 0,
        "kept_server": 0,
        "superseded": 0,
    }
    assert db_rows(postgres, "SELECT title FROM tasks WHERE user_id = 'alice' ORDER BY title") == [("A",), ("B",)]


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
