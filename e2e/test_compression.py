"""Compression over real HTTP (gunicorn): Chromium boots Pyodide from the brotli copies; a gzip batch goes in, a
gzip bomb is a 413 in the envelope."""

from __future__ import annotations

import gzip
import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from e2e.conftest import ROOT, LiveServer
from lsmigrate.server.runtime.precompressed import REPACKED, codings
from tests.corpus import realistic_tasks
from tests.migration_helpers import API, batch_body
from tests.test_compressed_bodies import GIB, compact, gzip_of_zeros

pytestmark = pytest.mark.e2e


def call(server: LiveServer, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """One request on a connection of its own: the status and the JSON answer."""
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=60)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


#: What Pyodide fetches to boot.
RUNTIME = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")


def test_chromium_boots_pyodide_from_the_compressed_runtime(page: Page, live_server: LiveServer) -> None:
    version = json.loads((ROOT / "node_modules" / "pyodide" / "package.json").read_text())["version"]
    base = f"/lsmigrate/pyodide/{version}/"
    page.goto(f"{live_server.url}/lsmigrate/static/demo.css")
    sizes = page.evaluate(
        """async (base) => {
          const { loadPyodide } = await import(base + 'pyodide.mjs');
          const pyodide = await loadPyodide({ indexURL: base });
          const answer = pyodide.runPython('import json, zipfile; json.dumps([6 * 7])');
          const entries = performance.getEntriesByType('resource').filter((e) => e.name.includes(base));
          return { answer, files: Object.fromEntries(entries.map((e) => [e.name.slice(e.name.lastIndexOf('/') + 1),
            [e.encodedBodySize, e.decodedBodySize]])) };
        }""",
        base,
    )
    assert sizes["answer"] == "[42]"
    files = sizes["files"]
    assert set(RUNTIME) <= set(files), files
    built = ROOT / "node_modules" / ".lsmigrate-precompressed" / version
    for name in RUNTIME:
        # The stdlib is served repacked (its entries stored, so that brotli finds something): the same files.
        served = built / name if name in REPACKED else ROOT / "node_modules" / "pyodide" / name
        assert files[name][1] == served.stat().st_size, name
    wire, decoded = files["pyodide.asm.wasm"]
    # The brotli copy (2.7 of 9.6 MB), or gzip's (3.5); uncompressed means the copies were never built.
    assert wire < decoded * 0.4, f"pyodide.asm.wasm came {wire} of {decoded} bytes: run scripts/bootstrap.sh"
    if "br" in codings():
        total = sum(files[name][0] for name in RUNTIME)
        assert total <= 5_000_000, f"the runtime came as {total} bytes"  # design §13: 5 MB cold, wheels included


@pytest.fixture
def session(live_server: LiveServer) -> tuple[str, dict[str, str]]:
    """A new session of a user of its own: its id and the user's Authorization header."""
    user = f"zipped-{time.monotonic_ns()}"
    headers = {"Authorization": f"Bearer {live_server.token(user)}"}
    status, answer = call(live_server, "POST", f"{API}/sessions", compact({"client_session_id": "tab"}), headers)
    assert status == 201, answer
    return answer["session_id"], headers


def test_a_gzip_batch_goes_in_and_replays_plain(live_server: LiveServer, session) -> None:
    sid, headers = session
    body = compact(batch_body("task-store", realistic_tasks(200, seed=14)))
    zipped = gzip.compress(body)
    assert len(zipped) < len(body) / 3
    path = f"{API}/sessions/{sid}/batches/0"
    status, answer = call(live_server, "PUT", path, zipped, {**headers, "Content-Encoding": "gzip"})
    assert status == 200, answer
    assert answer["counts"] == {"inserted": 200}
    assert call(live_server, "PUT", path, body, headers) == (200, answer)


def test_a_gzip_bomb_on_the_batch_route_is_a_413_in_the_envelope(live_server: LiveServer, session) -> None:
    sid, headers = session
    bomb = gzip_of_zeros(2 * GIB)  # 2.1 MB sent, under the 32 MB limit; 2 GiB once inflated
    started = time.monotonic()
    status, answer = call(
        live_server, "PUT", f"{API}/sessions/{sid}/batches/0", bomb, {**headers, "Content-Encoding": "gzip"}
    )
    assert time.monotonic() - started < 10
    assert status == 413
    assert answer == {
        "error": {
            "code": "request_too_large",
            "message": f"The request body is larger than {32 * 1024 * 1024} bytes once decompressed.",
            "details": None,
        }
    }
    assert live_server.rows("SELECT count(*) FROM migration_batches WHERE session_id = %s", sid) == [(0,)]
    # The worker that refused it is still there and answers.
    status, answer = call(live_server, "GET", f"{API}/sessions/{sid}", b"", headers)
    assert status == 200 and answer["session_id"] == sid
