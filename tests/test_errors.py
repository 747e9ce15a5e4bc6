"""Every error code the API documents comes from a real request, in the one envelope."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any

import psycopg

from lsmigrate.server import errors
from tests.migration_helpers import (
    API,
    batch_body,
    catalog_of,
    colliding_ledger_row,
    complete,
    manifest_entry,
    migrate,
    open_session,
    put,
    unreachable_app,
)

TASKS = [{"id": "task-1", "title": "First"}, {"id": "task-2", "title": "Second"}, {"id": "task-3", "title": "Third"}]


def documented_codes() -> set[str]:
    """The error codes the tree in lsmigrate.server.errors' docstring lists."""
    tree = (errors.__doc__ or "").split("\n\n")[1].splitlines()[1:]
    return {code for line in tree for code in re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", line)}


def test_every_error_code_comes_from_a_real_request(app, client, auth, postgres, monkeypatch) -> None:
    seen: dict[str, int] = {}

    def expect(response: Any, status: int, code: str) -> None:
        assert (response.status_code, response.json["error"]["code"]) == (status, code), response.json
        assert set(response.json["error"]) == {"code", "message", "details"}
        seen[code] = status

    alice, bob = auth("alice"), auth("bob")
    sid = open_session(client, alice, "tab-1")
    batch = f"{API}/sessions/{sid}/batches"
    expect(client.put(f"{batch}/0", data=b"{not json", headers=alice), 400, "invalid_json")
    gzip_said = {**alice, "Content-Encoding": "gzip"}
    expect(client.put(f"{batch}/0", data=b"not gzip", headers=gzip_said), 400, "invalid_encoding")
    expect(
        client.put(f"{batch}/0", data=b"{}", headers={**alice, "Content-Encoding": "br"}), 415, "unsupported_encoding"
    )
    expect(client.post(f"{API}/sessions", json={}), 401, "missing_token")
    expect(client.post(f"{API}/sessions", json={}, headers={"Authorization": "Bearer x"}), 401, "invalid_token")
    expect(put(client, bob, sid, 0, batch_body("task-store", TASKS)), 403, "foreign_session")
    expect(put(client, alice, str(uuid.uuid4()), 0, batch_body("task-store", TASKS)), 404, "unknown_session")
    expect(client.get("/api/nothing-here"), 404, "not_found")
    expect(client.delete(f"{API}/sessions", headers=alice), 405, "method_not_allowed")
    expect(put(client, alice, sid, 0, {"key": "task-store"}), 422, "invalid_request")
    expect(put(client, alice, sid, 0, batch_body("nope", [])), 422, "unknown_store")
    expect(put(client, alice, sid, 0, batch_body("task-store", TASKS) | {"digests": []}), 422, "digest_mismatch")
    monkeypatch.setitem(app.config, "MAX_BATCH_RECORDS", 2)
    expect(put(client, alice, sid, 0, batch_body("task-store", TASKS)), 413, "too_many_records")
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 100)
    expect(put(client, alice, sid, 0, batch_body("task-store", TASKS)), 413, "request_too_large")
    monkeypatch.undo()

    with colliding_ledger_row(app, postgres, sid):
        expect(put(client, alice, sid, 0, batch_body("task-store", TASKS)), 409, "concurrent_write")
    assert put(client, alice, sid, 0, batch_body("task-store", TASKS)).status_code == 200
    expect(put(client, alice, sid, 0, batch_body("task-store", TASKS[:1])), 409, "batch_mismatch")
    expect(put(client, alice, sid, 1, batch_body("task-store", TASKS[2:], offset=2)), 409, "records_already_sent")
    expect(client.post(f"{API}/sessions", json={"client_session_id": "tab-2"}, headers=alice), 409, "session_active")
    body = {"client_session_id": "tab-1", "dry_run": True}
    expect(client.post(f"{API}/sessions", json=body, headers=alice), 409, "dry_run_mismatch")
    wrong = {"manifest": {"task-store": manifest_entry(TASKS[:2], catalog_of(client), "task-store")}}
    expect(client.post(f"{API}/sessions/{sid}/complete", json=wrong, headers=alice), 409, "manifest_mismatch")
    assert complete(client, alice, sid, {"task-store": TASKS}).status_code == 200
    expect(put(client, alice, sid, 1, batch_body("task-store", ["more"], offset=3)), 409, "session_closed")

    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    asked, answers, _ = migrate(client, alice, {"task-store": [dict(TASKS[0], title="Edited")]}, "tab-3")
    conflict_url = f"{API}/sessions/{asked}/conflicts/{answers[0]['results'][0]['conflict_id']}"
    assert client.post(conflict_url, json={"keep": "server"}, headers=alice).status_code == 200
    expect(client.post(conflict_url, json={"keep": "local"}, headers=alice), 409, "conflict_resolved")
    unknown = f"{API}/sessions/{asked}/conflicts/{uuid.uuid4()}"
    expect(client.post(unknown, json={"keep": "local"}, headers=alice), 404, "unknown_conflict")

    carol = auth("carol")
    assert app.test_cli_runner().invoke(args=["lsmigrate", "revoke", "--user", "carol"]).exit_code == 0
    expect(client.post(f"{API}/sessions", json={}, headers=carol), 401, "token_revoked")
    quarantined, _, _ = migrate(
        client, alice, {"environments": [{"id": "e", "name": [1], "githubToken": "ghp_x"}]}, "tab-4"
    )
    with psycopg.connect(postgres.conninfo) as connection:  # a ciphertext no key opens
        connection.execute("""UPDATE quarantine SET raw = jsonb_set(raw, '{githubToken,$encrypted}', '"gAAAAAx"')""")
    expect(client.get(f"{API}/sessions/{quarantined}/quarantine", headers=alice), 500, "secret_unreadable")
    with psycopg.connect(postgres.conninfo) as connection:  # verified long ago, then pruned
        connection.execute(
            "UPDATE migration_sessions SET completed_at = now() - interval '91 days' WHERE id = %s", (quarantined,)
        )
    assert app.test_cli_runner().invoke(args=["lsmigrate", "prune", "--older-than", "90d"]).exit_code == 0
    expect(client.post(f"{API}/sessions/{quarantined}/rollback", headers=alice), 409, "session_pruned")

    expect(client.get("/metrics", headers=alice), 401, "operator_token_required")
    queued = {**alice, "X-Request-Start": f"t={(time.time() - 3600) * 1000:.0f}"}
    expect(client.post(f"{API}/sessions", json={"client_session_id": "tab-5"}, headers=queued), 503, "server_busy")
    dave = auth("dave")
    sid = open_session(client, dave, "tab-6")
    with psycopg.connect(postgres.conninfo) as other:  # another batch of dave's holds his lock
        key = int.from_bytes(hashlib.sha256(b"lsmigrate user\ndave").digest()[:8], signed=True)
        other.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        expect(put(client, dave, sid, 0, batch_body("task-store", TASKS)), 429, "user_busy")

    with unreachable_app() as (down, headers):
        response = down.post(f"{API}/sessions", json={"client_session_id": "c"}, headers=headers)
        expect(response, 503, "database_unavailable")

    assert set(seen) == documented_codes()
