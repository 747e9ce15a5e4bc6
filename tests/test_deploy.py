"""The real deployment (deploy/cluster.py) in a short smoke run: 20 users migrate through nginx, three gunicorn
instances, PgBouncer in transaction mode, PostgreSQL and Redis, while one instance crashes and comes back.

The clients speak the protocol over HTTP with pre-encoded bodies and retry as the page does (the same request
again after a network error or a "later" answer, after Retry-After or the page's backoff). At the end every
session is verified and the database holds each user's records exactly once, and the deployment stops with
no process left behind.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.ingest_load import KEY, encode_json
from deploy.cluster import Deployment
from lsmigrate.browser.retries import Reply, RetryPolicy, should_retry
from lsmigrate.demo.stores import STORES
from lsmigrate.server import create_app
from lsmigrate.server.api.auth import issue_token
from lsmigrate.server.config import DEFAULTS
from lsmigrate.shared.canonical import digest
from lsmigrate.shared.keys import split_key
from tests.corpus import compact_tasks

USERS = 20
BATCH = 25
#: The page's policy, its waits shortened: a crashed instance is back within seconds.
POLICY = RetryPolicy(attempts=8, base=0.2, cap=2.0)
API = "/api/migration"


@dataclass
class Client:
    """One simulated page: its user, token, records and pre-encoded bodies, and what the server answered."""

    user: str
    token: str
    records: list[Any]
    batches: list[bytes] = field(default_factory=list)
    remainder: bytes = b""
    complete: bytes = b""
    verdict: dict[str, Any] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)

    def encode(self) -> None:
        """Every body of the migration, as the page would send them."""
        digests = [digest(record) for record in self.records]
        for offset in range(0, len(self.records), BATCH):
            payload = {
                "key": KEY,
                "store": "tasks",
                "offset": offset,
                "records": self.records[offset : offset + BATCH],
                "digests": digests[offset : offset + BATCH],
            }
            self.batches.append(encode_json(payload))
        raw = encode_json({"state": {"tasks": self.records, "selectedTaskId": None}, "version": 0}).decode()
        whole = split_key(KEY, raw, STORES.stores_for_key(KEY))
        self.remainder = encode_json({"key": KEY, "remainder": whole.remainder})
        self.complete = encode_json({"manifest": {KEY: whole.manifest(digests)}})


def _send(connection: http.client.HTTPConnection, client: Client, method: str, path: str, body: bytes) -> Reply:
    """Send until the answer is not "later", as the page's send_with_retries does; the answer."""
    headers = {"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"}
    for attempt in range(1, POLICY.attempts + 1):
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()  # the next request connects again
            reason, delay = "network_error", POLICY.backoff(attempt)
        else:
            retry_after = response.getheader("Retry-After")
            reply = Reply(response.status, json.loads(answer) if answer else None, float(retry_after or 0) or None)
            if not should_retry(reply):
                return reply
            reason = reply.error_code
            delay = reply.retry_after if reply.retry_after is not None else POLICY.backoff(attempt)
        client.retries[reason] = client.retries.get(reason, 0) + 1
        time.sleep(delay)
    raise AssertionError(f"{method} {path} of {client.user} got no answer after {POLICY.attempts} tries")


def _migrate(url: str, client: Client, acknowledged: list[int]) -> None:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    opened = _send(connection, client, "POST", f"{API}/sessions", encode_json({"client_session_id": "smoke"}))
    assert opened.status in (200, 201), opened
    prefix = f"{API}/sessions/{opened.body['session_id']}"
    for seq, body in enumerate(client.batches):
        answer = _send(connection, client, "PUT", f"{prefix}/batches/{seq}", body)
        assert answer.status == 200, answer
        assert answer.body["counts"] == {"inserted": len(json.loads(body)["records"])}, answer
        acknowledged.append(1)
    assert _send(connection, client, "PUT", f"{prefix}/remainders", client.remainder).status == 200
    verdict = _send(connection, client, "POST", f"{prefix}/complete", client.complete)
    assert verdict.status == 200, verdict
    client.verdict = verdict.body
    connection.close()


def _wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the run stopped making progress"
        time.sleep(0.02)


def _health_check(deployment: Deployment) -> bool:
    with urllib.request.urlopen(deployment.url + "/healthz", timeout=5) as response:
        return bool(response.status == 200)


def _clients(deployment: Deployment) -> list[Client]:
    users = [f"smoke-{i:02d}" for i in range(USERS)]
    # One token from the operator CLI, as an operator gets it; the rest signed here with the same key.
    tokens = {users[0]: deployment.flask("lsmigrate", "token", users[0])}
    signer = create_app({"SECRET_KEY": deployment.env["LSMIGRATE_SECRET_KEY"], "DEMO": True, "TESTING": True})
    with signer.app_context():
        tokens |= {user: issue_token(user) for user in users[1:]}
    # 40 to 210 records each: 2 to 9 batches, so the crash lands in the middle of most users' runs.
    clients = [Client(user, tokens[user], compact_tasks(40 + 10 * i, seed=i)) for i, user in enumerate(users)]
    for client in clients:
        client.encode()
    return clients


def _stored(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """Per user, from PostgreSQL directly: sessions by status, the rows' digests, the ledger's digests and outcomes."""
    found: dict[str, dict[str, Any]] = {}
    with psycopg.connect(deployment.database_url) as connection:
        for user, status in connection.execute("SELECT user_id, status FROM migration_sessions"):
            found.setdefault(user, {"sessions": [], "rows": [], "ledger": []})["sessions"].append(status)
        for user, source_digest in connection.execute("SELECT user_id, source_digest FROM tasks"):
            found[user]["rows"].append(source_digest)
        ledger = connection.execute(
            "SELECT s.user_id, l.digest, l.outcome"
            " FROM migration_ledger l JOIN migration_sessions s ON s.id = l.session_id"
        )
        for user, record_digest, outcome in ledger:
            found[user]["ledger"].append((record_digest, outcome))
    return found


def test_twenty_users_migrate_through_the_deployment_while_an_instance_crashes() -> None:
    with Deployment(instances=3, workers=1) as deployment:
        clients = _clients(deployment)
        total = sum(len(client.batches) for client in clients)
        acknowledged: list[int] = []
        errors: list[BaseException] = []

        def run(client: Client) -> None:
            try:
                _migrate(deployment.url, client, acknowledged)
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=(client,), daemon=True) for client in clients]
        for thread in threads:
            thread.start()
        _wait_until(lambda: len(acknowledged) >= total // 4 or errors)
        crashed = deployment.pids()["gunicorn-1"]
        deployment.kill_instance(1)
        assert deployment.pids()["gunicorn-1"] == []
        _wait_until(lambda: len(acknowledged) >= total // 2 or errors)
        deployment.restart_instance(1)
        assert deployment.pids()["gunicorn-1"] and not set(crashed) & set(deployment.pids()["gunicorn-1"])
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors[0]
        assert len(acknowledged) == total

        # The crash was seen: nginx sent requests to the dead instance and on to a live one (its log names both).
        access = deployment.nginx.folder / "access.log"
        assert any(", 127.0.0.1:" in line for line in access.read_text().splitlines())
        # And the restarted instance is back in the rotation once nginx's fail_timeout for it has passed.
        back = f"upstream=127.0.0.1:{deployment.instances[1].port}/200"
        _wait_until(lambda: _health_check(deployment) and back in access.read_text())

        stored = _stored(deployment)
        pids = [pid for group in deployment.pids().values() for pid in group]
        folders = [deployment.root, deployment.postgres.root]

    assert set(stored) == {client.user for client in clients}
    for client in clients:
        assert client.verdict["verified"] and client.verdict["deletable_keys"] == [KEY], client.verdict
        mine = stored[client.user]
        assert mine["sessions"] == ["verified"]
        sent = sorted(digest(record) for record in client.records)
        assert sorted(mine["rows"]) == sent  # nothing lost, nothing twice
        assert sorted(mine["ledger"]) == [(each, "inserted") for each in sent]
    # Stopped cleanly: every process it ran is gone, and so is its folder.
    assert [pid for pid in pids if _alive(pid)] == []
    assert deployment.pids() == {name: [] for name in deployment.pids()}
    assert not any(folder.exists() for folder in folders)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead and waiting to be reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(
    ("env", "limit"), [({}, DEFAULTS["MAX_CONTENT_LENGTH"]), ({"LSMIGRATE_MAX_CONTENT_LENGTH": "4096"}, 4096)]
)
def test_the_proxy_takes_exactly_the_bodies_lsmigrate_takes(env: dict[str, str], limit: int) -> None:
    deployment = Deployment(instances=2, workers=1, env=env)
    try:
        conf = deployment.nginx.write_config()  # checked by `nginx -t`
    finally:
        deployment.close()
    assert f"client_max_body_size {limit};" in conf
    assert conf.count("max_fails=") == 2
    assert not deployment.root.exists() and not deployment.postgres.root.exists()
