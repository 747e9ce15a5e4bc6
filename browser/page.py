"""The runner's adapters over the page: localStorage, fetch, the loader's host (IndexedDB, the network), events.

`run` is what runtime.js calls once Pyodide and the wheels are loaded, in the
worker (worker.js) or on the page's own thread (loader.js's fallback). It
passes `host`, a JS object whose methods return promises:
`saveBackup(valuesJson, metaJson)`, `backupValues(id)`, `loadCheckpoint()`,
`saveCheckpoint(json)`, `clearCheckpoint()` (backups.js), `online()`, `untilOnline()`;
in the worker also `readStorage()` (JSON `{"keys": [every key], "values":
{migratable key: value}}`, read by the page's thread in slices),
`swap(key, expected, value)` (compare-and-set on the page's thread: "held",
"gone" or "rewritten") and `gzip(text)` (the bytes, a Uint8Array).
JSON crosses the boundary as text; a JS error arrives as its message.
Options: `storage` "page" (localStorage itself, this thread) or "host"
(through the host, from a worker), `compress` (gzip request bodies).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

from lsmigrate.browser.progress import Emit
from lsmigrate.browser.retries import NetworkError, Reply, RetryPolicy, Send
from lsmigrate.browser.runner import HELD, DirectStorage, Host, Options, finish_migration, run_migration
from lsmigrate.shared.catalog import catalog_from_descriptor

# mypy checks the Pyodide branch, against the declarations in typings/ (js, pyodide).
if TYPE_CHECKING or sys.platform == "emscripten":  # pragma: no cover - only under Pyodide
    import js  # the page's globals, or the worker's (which have no localStorage)
    from pyodide.ffi import JsException
    from pyodide.http import pyfetch
else:  # plain CPython: the module imports, the adapters are not used

    class JsException(Exception):  # noqa: N818 - Pyodide's name
        """Stands in for pyodide.ffi.JsException off the page."""


class LocalStorage(DirectStorage):
    """The page's localStorage, with Python strings (the runner on the page's own thread)."""

    def keys(self) -> list[str]:
        """Every key currently stored."""
        storage = js.localStorage
        return [str(storage.key(i)) for i in range(storage.length)]

    def get(self, key: str) -> str | None:
        """The raw value of a key, or None."""
        value = js.localStorage.getItem(key)
        return None if value is None else str(value)

    def set(self, key: str, value: str) -> None:
        """Write a key."""
        js.localStorage.setItem(key, value)

    def remove(self, key: str) -> None:
        """Delete a key."""
        js.localStorage.removeItem(key)


class HostStorage:
    """The page's localStorage seen from a worker: the keys and values as the page's thread last read them for
    us (`refresh`), and compare-and-set done there (`swap`), where nothing of the app runs in between."""

    def __init__(self, host: Any) -> None:
        self._host = host
        self._keys: list[str] = []
        self._values: dict[str, str] = {}

    def keys(self) -> list[str]:
        """Every key, as last read."""
        return list(self._keys)

    def get(self, key: str) -> str | None:
        """A migratable key's value as last read, or None."""
        return self._values.get(key)

    async def refresh(self) -> None:
        """Read localStorage again (on the page's thread, in slices)."""
        snapshot = json.loads(await self._host.readStorage())
        self._keys, self._values = snapshot["keys"], snapshot["values"]

    async def swap(self, key: str, expected: str, value: str | None) -> str:
        """Write `value` (None: delete) only while the key holds `expected`; what was found."""
        found = str(await self._host.swap(key, expected, value))
        if found == HELD:
            if value is None:
                self._values.pop(key, None)
                self._keys = [name for name in self._keys if name != key]
            else:
                self._values[key] = value
        return found


class HostBackups:
    """The backups and the checkpoint, kept by the loader's host (backups.js) in IndexedDB."""

    def __init__(self, host: Any) -> None:
        self._host = host

    async def save(self, values: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
        """Back up `values`; the backup's summary (its id first)."""
        summary: dict[str, Any] = json.loads(await self._host.saveBackup(json.dumps(values), json.dumps(meta)))
        return summary

    async def values(self, backup_id: str) -> dict[str, str]:
        """The raw values a backup holds, checked against their digests."""
        values: dict[str, str] = json.loads(await self._host.backupValues(backup_id))
        return values

    async def load_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint of an unfinished run, or None."""
        checkpoint: dict[str, Any] | None = json.loads(await self._host.loadCheckpoint())  # "null" when none
        return checkpoint

    async def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Replace the checkpoint."""
        await self._host.saveCheckpoint(json.dumps(checkpoint))

    async def clear_checkpoint(self) -> None:
        """Forget the checkpoint: the run it resumes has finished."""
        await self._host.clearCheckpoint()


class PagePacing:
    """Time and the network as the page has them: setTimeout through asyncio, navigator.onLine."""

    def __init__(self, host: Any) -> None:
        self._host = host

    async def sleep(self, seconds: float) -> None:
        """Wait without blocking the page."""
        await asyncio.sleep(seconds)

    def online(self) -> bool:
        """What the browser believes (the host asks the page's thread: a worker's own navigator may lag)."""
        return bool(self._host.online())

    async def until_online(self) -> None:
        """Resolve at the next `online` event (at once when online)."""
        await self._host.untilOnline()

    def now(self) -> float:
        """A monotonic clock in seconds."""
        return time.monotonic()

    async def breathe(self) -> None:
        """Let the page handle its events and paint before the next slice of work."""
        await asyncio.sleep(0)


def _retry_after(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the backoff decides


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_body(body: Any) -> str:
    """`body` as JSON text that survives fetch: a lone surrogate (a title cut in the middle of an emoji is an
    ordinary JavaScript string) escaped as \\uXXXX, which fetch's UTF-8 would turn into U+FFFD; other text as it is.

    JSON's own characters are ASCII, so a surrogate in the text is always inside a string, where the escape means
    the same code point to the server's parser.
    """
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if text.isascii():
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


#: A body shorter than this goes as it is: compressing it would save less than its own header costs.
COMPRESS_FROM = 1024


def fetch_sender(api_base: str, token: str, gzip: Any = None) -> Send:
    """A `send` that calls the migration API with fetch and the bearer token; with `gzip` (the host's, text to
    compressed bytes), a body of COMPRESS_FROM characters or more goes gzip-compressed (`Content-Encoding`)."""

    async def send(method: str, path: str, body: Any) -> Reply:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), "Content-Type": "application/json"}
        payload: Any = None if body is None else json_body(body)
        try:
            if gzip is not None and payload is not None and len(payload) >= COMPRESS_FROM:
                payload, headers["Content-Encoding"] = await gzip(payload), "gzip"
            response = await pyfetch(api_base + path, method=method, headers=headers, body=payload)
            text = await response.string()
        except (JsException, OSError) as error:  # fetch rejects with a TypeError when nothing answered
            raise NetworkError(str(error)) from error
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            answer = None
        return Reply(response.status, answer, _retry_after(response.headers.get("retry-after")))

    return send


def _emitter(callback: Any) -> Emit:
    def emit(name: str, detail: dict[str, Any]) -> None:
        callback(name, json.dumps(detail))

    return emit


def _host_and_options(options: dict[str, Any], callback: Any, host: Any) -> tuple[Host, Options]:
    retry = options.get("retry", {})
    in_worker = options.get("storage") == "host"
    return (
        Host(
            HostStorage(host) if in_worker else LocalStorage(),
            fetch_sender(options["api"], options["token"], host.gzip if options.get("compress") else None),
            _emitter(callback),
            HostBackups(host),
            PagePacing(host),
        ),
        Options(
            catalog=catalog_from_descriptor(options["stores"]),
            batch_size=int(options.get("batchSize", 500)),
            dry_run=bool(options.get("dryRun", False)),
            settled_keys=frozenset(options.get("settledKeys", ())),
            retry=RetryPolicy(
                attempts=int(retry.get("attempts", 8)),
                base=float(retry.get("base", 0.5)),
                cap=float(retry.get("cap", 30.0)),
            ),
        ),
    )


def _failed(error: Exception) -> dict[str, Any]:
    traceback.print_exc()
    return {"state": "failed", "error": {"code": "runner_error", "message": f"{type(error).__name__}: {error}"}}


async def run(options_json: str, callback: Any, host: Any) -> str:
    """Run one migration with the loader's options and host; returns the report as JSON."""
    try:
        report = await run_migration(*_host_and_options(json.loads(options_json), callback, host))
    except Exception as error:  # noqa: BLE001 - reported to the page, traceback to the console
        report = _failed(error)
    return json.dumps(report)


async def finish(options_json: str, report_json: str, callback: Any, host: Any) -> str:
    """Verify the last run's session again (its conflicts resolved) and clean up what it now lists."""
    try:
        report = await finish_migration(
            *_host_and_options(json.loads(options_json), callback, host), json.loads(report_json)
        )
    except Exception as error:  # noqa: BLE001 - reported to the page, traceback to the console
        report = _failed(error)
    return json.dumps(report)
