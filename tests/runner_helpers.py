"""The page's runner on CPython: fakes of localStorage, IndexedDB and time, and a sender over a test client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flask.testing import FlaskClient

from lsmigrate.browser.retries import Reply, Send
from lsmigrate.browser.runner import DirectStorage, Host, Options, run_migration
from lsmigrate.demo.stores import STORES


class FakeLocalStorage(DirectStorage):
    """localStorage as a dict, on the page's thread (always current; compare-and-set in one step)."""

    def __init__(self, items: dict[str, str]) -> None:
        self.items = dict(items)

    def keys(self) -> list[str]:
        return list(self.items)

    def get(self, key: str) -> str | None:
        return self.items.get(key)

    def set(self, key: str, value: str) -> None:
        self.items[key] = value

    def remove(self, key: str) -> None:
        del self.items[key]


class MemoryBackups:
    """IndexedDB as dicts: the backups by id, and the checkpoint."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.saved: dict[str, dict[str, str]] = {}
        self.metas: dict[str, dict[str, Any]] = {}
        self.checkpoint: dict[str, Any] | None = None

    async def save(self, values: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        backup_id = f"b{len(self.saved)}"
        self.saved[backup_id] = dict(values)
        self.metas[backup_id] = json.loads(json.dumps(meta))
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


def client_sender(
    client: FlaskClient, headers: dict[str, str], before: Any = None, api: str = "/api/migration"
) -> Send:
    """A runner's `send` over a Flask test client (its cookies kept), `before(method, path)` called first."""

    async def send(method: str, path: str, body: Any) -> Reply:
        if before is not None:
            before(method, path)
        response = client.open(f"{api}{path}", method=method, json=body, headers=headers)
        retry_after = response.headers.get("Retry-After")
        return Reply(response.status_code, response.json, None if retry_after is None else float(retry_after))

    return send


def zustand(name: str, records: list[Any]) -> str:
    """A Zustand persist value holding `records` under `name`."""
    return json.dumps({"state": {name: records}, "version": 0})


def run(
    storage: FakeLocalStorage,
    send: Send,
    batch_size: int = 2,
    backups: MemoryBackups | None = None,
    pacing: FakePacing | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The report of one run (the demo's stores unless `catalog=` says otherwise), its events under "events"."""
    events: list[tuple[str, dict[str, Any]]] = []
    host = Host(storage, send, lambda n, d: events.append((n, d)), backups or MemoryBackups(), pacing or FakePacing())
    options.setdefault("catalog", STORES)
    report = asyncio.run(run_migration(host, Options(batch_size=batch_size, **options)))
    report["events"] = events
    return report
