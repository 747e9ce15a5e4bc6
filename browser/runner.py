"""One migration run in the page: extract → validate and map → upload → verify → clean up.

The runner knows the protocol and the promise, not the browser: storage,
the network (`send`) and progress events (`emit`) are passed in, so the same
code runs under Pyodide and in CPython tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from lsmigrate.shared.canonical import manifest_digest
from lsmigrate.shared.catalog import spec_for_key
from lsmigrate.shared.envelopes import SourceError
from lsmigrate.shared.stores import OWN_KEY_PREFIX, StoreSpec

Send = Callable[[str, str, Any], Awaitable[tuple[int, Any]]]
Emit = Callable[[str, dict[str, Any]], None]

OUTCOME_COUNTS = ("inserted", "updated", "unchanged", "quarantined", "conflict", "kept_server", "superseded")


class Storage(Protocol):
    """What the runner needs of localStorage."""

    def keys(self) -> list[str]: ...
    def get(self, key: str) -> str | None: ...
    def remove(self, key: str) -> None: ...


class MigrationFailed(Exception):
    """The server refused a step; carries the error envelope's code and message."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


@dataclass
class _Source:
    key: str
    spec: StoreSpec
    raw: str
    records: list[Any]
    digests: list[str]


def _key_report(found: int) -> dict[str, Any]:
    report: dict[str, Any] = {"found": found, "warnings": 0, "cleaned_up": False}
    report.update(dict.fromkeys(OUTCOME_COUNTS, 0))
    return report


async def _call(send: Send, method: str, path: str, body: Any, ok: tuple[int, ...] = (200,)) -> Any:
    status, answer = await send(method, path, body)
    if status in ok:
        return answer
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    raise MigrationFailed(
        error.get("code", f"http_{status}"),
        error.get("message", f"{method} {path} answered {status}"),
        error.get("details"),
    )


def _read_sources(storage: Storage, report: dict[str, Any]) -> list[_Source]:
    sources = []
    for key in sorted(storage.keys()):
        spec = spec_for_key(key)
        if spec is None:
            if not key.startswith(OWN_KEY_PREFIX):
                report["unknown_keys"].append(key)  # reported, never read or touched
            continue
        raw = storage.get(key)
        if raw is None:
            continue
        try:
            extracted = spec.extract(key, raw)
        except SourceError as error:
            report["errors"].append(error.as_dict())
            report["keys"][key] = {"found": None, "error": str(error), "cleaned_up": False}
            continue
        sources.append(_Source(key, spec, raw, extracted.records, []))
        report["keys"][key] = _key_report(len(extracted.records))
        if extracted.warnings:
            report["keys"][key]["source_warnings"] = extracted.warnings
    return sources


async def run_migration(
    storage: Storage,
    send: Send,
    emit: Emit,
    *,
    batch_size: int = 500,
    client_session_id: str | None = None,
) -> dict[str, Any]:
    """Migrate every store found in `storage`; returns the report of design §9.

    A step the server refuses ends the run with state "failed" and the
    server's error in the report; nothing is deleted then.
    """
    report: dict[str, Any] = {"session_id": None, "state": "running", "keys": {}, "errors": [], "unknown_keys": []}
    try:
        await _migrate(report, storage, send, emit, batch_size, client_session_id)
    except MigrationFailed as error:
        report["state"] = "failed"
        report["error"] = {"code": error.code, "message": error.message, "details": error.details}
    return report


async def _migrate(
    report: dict[str, Any],
    storage: Storage,
    send: Send,
    emit: Emit,
    batch_size: int,
    client_session_id: str | None,
) -> None:
    sources = _read_sources(storage, report)
    total = sum(len(source.records) for source in sources)
    emit("lsmigrate:progress", {"phase": "extract", "done": total, "total": total})
    if not sources:
        report["state"] = "done"
        return

    session = await _call(
        send, "POST", "/sessions", {"client_session_id": client_session_id or str(uuid.uuid4())}, ok=(200, 201)
    )
    session_id = report["session_id"] = session["session_id"]
    now = datetime.now(UTC)
    for source in sources:
        mapped = source.spec.map(source.records, key=source.key, user_id=session["user_id"], migrated_at=now)
        source.digests = [m.digest for m in mapped]
        report["keys"][source.key]["warnings"] = sum(len(m.warnings) for m in mapped)
    emit("lsmigrate:progress", {"phase": "validate", "done": total, "total": total})

    seq, sent = 0, 0
    for source in sources:
        counts = report["keys"][source.key]
        for offset in range(0, len(source.records), batch_size):
            body = {
                "key": source.key,
                "offset": offset,
                "records": source.records[offset : offset + batch_size],
                "digests": source.digests[offset : offset + batch_size],
            }
            answer = await _call(send, "PUT", f"/sessions/{session_id}/batches/{seq}", body)
            for outcome, n in answer["counts"].items():
                counts[outcome] = counts.get(outcome, 0) + n
            seq += 1
            sent += len(body["records"])
            emit("lsmigrate:progress", {"phase": "upload", "done": sent, "total": total})

    manifest = {
        source.key: {"count": len(source.records), "digest": manifest_digest(source.digests)} for source in sources
    }
    verdict = await _call(send, "POST", f"/sessions/{session_id}/complete", {"manifest": manifest})
    emit("lsmigrate:progress", {"phase": "verify", "done": total, "total": total})

    raw_at_start = {source.key: source.raw for source in sources}
    for key in verdict["deletable_keys"]:
        # A key the app rewrote since we read it holds data we have not migrated: keep it.
        if key in raw_at_start and storage.get(key) == raw_at_start[key]:
            storage.remove(key)
            report["keys"][key]["cleaned_up"] = True
    for key, why in verdict.get("kept_keys", {}).items():
        report["keys"][key]["kept"] = why
    emit("lsmigrate:progress", {"phase": "cleanup", "done": total, "total": total})
    report["state"] = "done"
