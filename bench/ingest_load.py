"""The ingest benchmark's load generator: pre-encoded protocol bodies sent by plain http.client threads.

Everything a client sends is built before the clock starts (`prepare`): one
user and one open session per client, every batch body encoded to bytes with
its records' digests (lsmigrate.shared.canonical), the key's remainder
(what no store claims in it: the demo's `selectedTaskId`) and the manifest
for `complete`, both from the key read whole (`lsmigrate.shared.keys`). The
timed part (`upload`) is only sockets: each client thread holds one
keep-alive connection (or, with `reconnect`, one per batch), sends
its batches one after another, then completes its session; responses are
kept as bytes and checked after the clock stops (`check`), so the load
generator, which shares the cores with the server, spends as little CPU as
it can.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lsmigrate.demo.stores import STORES
from lsmigrate.shared.canonical import digest
from lsmigrate.shared.keys import split_key

KEY = "task-store"
Response = tuple[int, bytes]


def encode_json(value: Any) -> bytes:
    """A request body as the browser's JSON.stringify sends it: compact, UTF-8 kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Client:
    """One simulated browser: a user, its token and session, and its pre-encoded requests."""

    user: str
    token: str
    records: int
    batches: list[tuple[str, bytes]] = field(default_factory=list)  # (path, body) of each PUT
    remainder: tuple[str, bytes] = ("", b"")
    complete: tuple[str, bytes] = ("", b"")
    session_id: str = ""
    responses: list[Response] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds of each PUT, sent to answered
    completed: Response = (0, b"")

    def headers(self, body: bytes) -> dict[str, str]:
        """Request headers: the bearer token and the body's type and length."""
        return {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }


def _request(
    connection: http.client.HTTPConnection, client: Client, method: str, path: str, body: bytes, close: bool = False
) -> Response:
    headers = client.headers(body)
    if close:
        headers["Connection"] = "close"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def prepare(base_url: str, tokens: dict[str, str], chunks: list[list[Any]], batch: int, run_id: str) -> list[Client]:
    """Open a session per user and encode every request; `chunks[i]` are the records of user i."""
    host, port = base_url.removeprefix("http://").split(":")
    clients = []
    for (user, token), records in zip(tokens.items(), chunks, strict=True):
        client = Client(user=user, token=token, records=len(records))
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        status, body = _request(
            connection, client, "POST", "/api/migration/sessions", encode_json({"client_session_id": run_id})
        )
        connection.close()
        if status not in (200, 201):
            raise RuntimeError(f"opening a session for {user} answered {status}: {body[:300]!r}")
        client.session_id = json.loads(body)["session_id"]
        digests = [digest(record) for record in records]
        prefix = f"/api/migration/sessions/{client.session_id}"
        raw = encode_json({"state": {"tasks": records, "selectedTaskId": "task-1"}, "version": 0}).decode("utf-8")
        whole = split_key(KEY, raw, STORES.stores_for_key(KEY))
        for seq, offset in enumerate(range(0, len(records), batch)):
            payload = {
                "key": KEY,
                "store": "tasks",
                "offset": offset,
                "records": records[offset : offset + batch],
                "digests": digests[offset : offset + batch],
            }
            client.batches.append((f"{prefix}/batches/{seq}", encode_json(payload)))
        client.remainder = (f"{prefix}/remainders", encode_json({"key": KEY, "remainder": whole.remainder}))
        manifest = {KEY: whole.manifest(digests)}
        client.complete = (f"{prefix}/complete", encode_json({"manifest": manifest}))
        clients.append(client)
    return clients


def _run(
    host: str, port: int, client: Client, reconnect: bool, start: threading.Barrier, errors: list[BaseException]
) -> None:
    try:
        connection = http.client.HTTPConnection(host, port, timeout=120)
        connection.connect()
        start.wait()
        for path, body in client.batches:
            sent = time.perf_counter()
            client.responses.append(_request(connection, client, "PUT", path, body, close=reconnect))
            client.latencies.append(time.perf_counter() - sent)
            if reconnect:
                connection.close()  # the next request connects again (http.client's auto_open)
        client.responses.append(_request(connection, client, "PUT", *client.remainder))
        client.completed = _request(connection, client, "POST", *client.complete)
        connection.close()
    except BaseException as error:  # reported by upload(), in the main thread
        errors.append(error)
        start.abort()


@dataclass
class Timing:
    """What one timed upload took: wall seconds and the load generator's own CPU seconds."""

    wall: float
    client_cpu: float


def upload(base_url: str, clients: list[Client], reconnect: bool = False) -> Timing:
    """Send every client's batches and its `complete` concurrently; the wall and CPU time it took.

    Each client keeps one connection open for all its requests, or with `reconnect` opens a
    new one per batch (so gunicorn places each batch on whichever worker accepts it first).
    """
    host, port = base_url.removeprefix("http://").split(":")
    start = threading.Barrier(len(clients) + 1)
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_run, args=(host, int(port), client, reconnect, start, errors), daemon=True)
        for client in clients
    ]
    for thread in threads:
        thread.start()
    try:
        start.wait()  # every client is connected: the clock starts as they all send
    except threading.BrokenBarrierError:
        pass  # a client failed to connect: reported below
    cpu, wall = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.join()
    timing = Timing(wall=time.perf_counter() - wall, client_cpu=time.process_time() - cpu)
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}") from errors[0]
    return timing


def check(clients: list[Client]) -> None:
    """Every batch inserted all its records, and every session verified with its key deletable."""
    for client in clients:
        *batches, (status, answer) = client.responses
        if status != 200:
            raise RuntimeError(f"PUT {client.remainder[0]} answered {status}: {answer[:300]!r}")
        for (path, body), (status, answer) in zip(client.batches, batches, strict=True):
            sent = len(json.loads(body)["records"])
            if status != 200:
                raise RuntimeError(f"PUT {path} answered {status}: {answer[:300]!r}")
            counts = json.loads(answer)["counts"]
            if counts != {"inserted": sent}:
                raise RuntimeError(f"PUT {path}: expected {sent} inserted, got {counts}")
        status, answer = client.completed
        if status != 200:
            raise RuntimeError(f"complete of {client.user} answered {status}: {answer[:300]!r}")
        verdict = json.loads(answer)
        stripped = verdict.get("deletable_keys") == [KEY] and verdict.get("cleanup") == {KEY: "strip"}
        if not verdict.get("verified") or not stripped:
            raise RuntimeError(f"complete of {client.user} did not verify {KEY}: {verdict}")
