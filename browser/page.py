"""The runner's adapters over the page: localStorage, fetch, and the loader's event callback.

`run` is what loader.js calls once Pyodide and the wheels are loaded.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from lsmigrate.browser.runner import Emit, Send, run_migration

if sys.platform == "emscripten":  # pragma: no cover - only under Pyodide
    from js import localStorage
    from pyodide.http import pyfetch


class LocalStorage:
    """The page's localStorage, with Python strings."""

    def keys(self) -> list[str]:
        """Every key currently stored."""
        return [str(localStorage.key(i)) for i in range(localStorage.length)]

    def get(self, key: str) -> str | None:
        """The raw value of a key, or None."""
        value = localStorage.getItem(key)
        return None if value is None else str(value)

    def remove(self, key: str) -> None:
        """Delete a key."""
        localStorage.removeItem(key)


def fetch_sender(api_base: str, token: str) -> Send:
    """A `send` that calls the migration API with fetch and the bearer token."""

    async def send(method: str, path: str, body: Any) -> tuple[int, Any]:
        response = await pyfetch(
            api_base + path,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        )
        text = await response.string()
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            answer = None
        return response.status, answer

    return send


def _emitter(callback: Any) -> Emit:
    def emit(name: str, detail: dict[str, Any]) -> None:
        callback(name, json.dumps(detail))

    return emit


async def run(options_json: str, callback: Any) -> str:
    """Run one migration with the loader's options; returns the report as JSON."""
    options = json.loads(options_json)
    try:
        report = await run_migration(
            LocalStorage(),
            fetch_sender(options["api"], options["token"]),
            _emitter(callback),
            batch_size=int(options.get("batchSize", 500)),
        )
    except Exception as error:  # noqa: BLE001 - reported to the page, traceback to the console
        traceback.print_exc()
        report = {"state": "failed", "error": {"code": "runner_error", "message": f"{type(error).__name__}: {error}"}}
    return json.dumps(report)
