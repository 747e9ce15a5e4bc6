"""Release day: every user migrating at once through the real deployment, with an instance crashing mid-run.

    .venv/bin/python -m bench.release_day [--users 1000] [--seconds 60] [--instances 3] [--workers 2]
        [--batch 500] [--seed 0] [--no-kill] [--threads 200]

Starts deploy.cluster's Deployment (nginx, `--instances` gunicorn instances of `--workers` sync workers,
PgBouncer in transaction pooling, PostgreSQL, Redis; all on 127.0.0.1), then `--users` users arrive at random
over `--seconds` seconds, each a thread speaking the page's protocol over HTTP with bodies encoded beforehand
(POST /sessions, PUT each batch with its records_digest, PUT the remainder, POST /complete) and retrying as the
page does (lsmigrate.browser.retries: the same request again after a network error or a "later" answer, after
its Retry-After; load-shed answers waited out without counting as failed tries). Their sizes follow a
release-day shape: most under 100 records, a tail up to 10,000; 2% hold malformed records (quarantined), 2%
had migrated once already and changed their records since (updated, under the demo's newest_wins). Halfway
through, instance 1 is killed (SIGKILL, master and workers) and started again 5 s later.

Reported: users completed and verified (all must be), the database against the source (per user: one ledger
entry per record, one row per record held in a row with its digest, nothing duplicated), the answers by status
and error code, latency of each batch request (sent to answered, retries apart) p50/p95/p99, records/s over the
run, and the CPU time of each part (load generator, nginx, each instance, PgBouncer, PostgreSQL, Redis). The
figures are printed, never asserted; the checks stop the run with what failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.ingest_load import KEY, encode_json
from deploy.cluster import Deployment
from lsmigrate.browser.retries import SHED_CODES, SHED_PATIENCE, Reply, RetryPolicy, should_retry
from lsmigrate.demo.stores import STORES
from lsmigrate.server import create_app
from lsmigrate.server.api.auth import issue_token
from lsmigrate.shared.canonical import digest, manifest_digest
from lsmigrate.shared.keys import split_key
from tests.corpus import compact_tasks

API = "/api/migration"
#: The page's policy (lsmigrate.browser.page's defaults).
POLICY = RetryPolicy(attempts=8, base=0.5, cap=30.0)
MALFORMED_SHARE = 0.02
DATABASE_OK = "every user: one ledger entry per record, one row per record held in a row, none twice"
CHANGED_SHARE = 0.02


def release_day_size(rng: random.Random) -> int:
    """Records of one user: 70% 1-99, 25% 100-999, 5% 1,000-10,000 (log-uniform within each band)."""
    draw = rng.random()
    low, high = (1, 99) if draw < 0.70 else (100, 999) if draw < 0.95 else (1_000, 10_000)
    return min(high, max(low, round(math.exp(rng.uniform(math.log(low), math.log(high))))))


@dataclass
class User:
    """One page: its user, token, records and pre-encoded bodies, what it met, and when it arrives."""

    name: str
    token: str
    records: list[Any]
    arrives: float
    kind: str = "plain"  # plain, malformed, changed
    batches: list[bytes] = field(default_factory=list)
    remainder: bytes = b""
    complete: bytes = b""
    verdict: dict[str, Any] = field(default_factory=dict)
    answers: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    error: str | None = None
    finished: float = 0.0

    def encode(self, batch: int) -> None:
        """Every body of the migration, as the page sends them (one records_digest per batch)."""
        digests = [digest(record) for record in self.records]
        for offset in range(0, len(self.records), batch):
            payload = {
                "key": KEY,
                "store": "tasks",
                "offset": offset,
                "records": self.records[offset : offset + batch],
                "records_digest": manifest_digest(digests[offset : offset + batch]),
            }
            self.batches.append(encode_json(payload))
        raw = encode_json({"state": {"tasks": self.records}, "version": 0}).decode()
        whole = split_key(KEY, raw, STORES.stores_for_key(KEY))
        self.remainder = encode_json({"key": KEY, "remainder": whole.remainder})
        self.complete = encode_json({"manifest": {KEY: whole.manifest(digests)}})


def _send(connection: http.client.HTTPConnection, user: User, method: str, path: str, body: bytes) -> Reply:
    """Send until the answer is not "later", as send_with_retries does; each try's answer and time counted."""
    headers = {"Authorization": f"Bearer {user.token}", "Content-Type": "application/json"}
    attempt = shed = 0
    while True:
        started = time.monotonic()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            user.answers["network_error"] += 1
            attempt += 1
            if attempt >= POLICY.attempts:
                raise
            time.sleep(POLICY.backoff(attempt))
            continue
        if "/batches/" in path:
            user.latencies.append(time.monotonic() - started)
        retry_after = response.getheader("Retry-After")
        reply = Reply(response.status, json.loads(answer) if answer else None, float(retry_after or 0) or None)
        user.answers[f"{reply.status} {reply.error_code if reply.status >= 300 else ''}".strip()] += 1
        if not should_retry(reply):
            return reply
        if reply.error_code in SHED_CODES and shed < POLICY.attempts * SHED_PATIENCE:
            shed += 1
        else:
            attempt += 1
            if attempt >= POLICY.attempts:
                return reply
        time.sleep(reply.retry_after if reply.retry_after is not None else POLICY.backoff(attempt + 1))


def migrate(url: str, user: User, client_session: str = "release-day") -> None:
    """One user's whole migration; `user.error` says what went wrong, if anything."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        opened = _send(connection, user, "POST", f"{API}/sessions", encode_json({"client_session_id": client_session}))
        if opened.status not in (200, 201):
            raise RuntimeError(f"POST /sessions answered {opened.status}: {opened.body}")
        prefix = f"{API}/sessions/{opened.body['session_id']}"
        for seq, body in enumerate(user.batches):
            if seq in opened.body.get("acknowledged_batches", []):
                continue
            answer = _send(connection, user, "PUT", f"{prefix}/batches/{seq}", body)
            if answer.status != 200:
                raise RuntimeError(f"batch {seq} answered {answer.status}: {answer.body}")
        if _send(connection, user, "PUT", f"{prefix}/remainders", user.remainder).status != 200:
            raise RuntimeError("the remainder was refused")
        verdict = _send(connection, user, "POST", f"{prefix}/complete", user.complete)
        if verdict.status != 200:
            raise RuntimeError(f"complete answered {verdict.status}: {verdict.body}")
        user.verdict = verdict.body
    except Exception as error:  # noqa: BLE001 - reported per user at the end
        user.error = f"{type(error).__name__}: {error}"
    finally:
        connection.close()
        user.finished = time.monotonic()


def make_users(options: argparse.Namespace, secret_key: str) -> list[User]:
    """The users, their records (2% malformed, 2% changed since an earlier migration) and arrival times."""
    rng = random.Random(options.seed)
    signer = create_app({"SECRET_KEY": secret_key, "DEMO": True, "TESTING": True})
    users = []
    with signer.app_context():
        for index in range(options.users):
            name = f"release-{index:05d}"
            records = compact_tasks(release_day_size(rng), seed=options.seed * 100_003 + index)
            user = User(name, issue_token(name), records, rng.uniform(0, options.seconds))
            draw = rng.random()
            if draw < MALFORMED_SHARE:
                user.kind = "malformed"
                for record in rng.sample(records, max(1, len(records) // 20)):
                    record["title"] = [record["title"]]  # a list where the schema says text: quarantined
            elif draw < MALFORMED_SHARE + CHANGED_SHARE:
                user.kind = "changed"
            users.append(user)
    for user in users:
        user.encode(options.batch)
    return users


def seed_changed(url: str, users: list[User], batch: int) -> None:
    """Users of kind "changed" migrated an older version of their records before the day (not measured)."""
    for user in users:
        if user.kind != "changed":
            continue
        older = User(
            user.name, user.token, [dict(record, title=f"{record['title']} (old)") for record in user.records], 0
        )
        for record in older.records:
            record["updatedAt"] = "2020-01-01T00:00:00.000Z"
        older.encode(batch)
        migrate(url, older, "before-release-day")
        if older.error:
            raise RuntimeError(f"seeding {user.name}: {older.error}")


def run(deployment: Deployment, users: list[User], options: argparse.Namespace) -> tuple[float, dict[str, float]]:
    """Every user at their arrival time (at most --threads at once), the crash halfway; (wall seconds, CPU)."""
    gate = threading.BoundedSemaphore(options.threads)
    meter = CpuMeter(deployment)
    started = time.monotonic()

    def one(user: User) -> None:
        with gate:
            migrate(deployment.url, user)

    threads = []
    killer = threading.Thread(target=_crash, args=(deployment, options, started), daemon=True)
    killer.start()
    for user in sorted(users, key=lambda user: user.arrives):
        time.sleep(max(0.0, started + user.arrives - time.monotonic()))
        thread = threading.Thread(target=one, args=(user,), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    wall = max(user.finished for user in users) - started
    killer.join()
    return wall, meter.stop()


def _crash(deployment: Deployment, options: argparse.Namespace, started: float) -> None:
    if options.no_kill:
        return
    time.sleep(max(0.0, started + options.seconds / 2 - time.monotonic()))
    print(f"... killing instance 1 at {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    deployment.kill_instance(1)
    time.sleep(5)
    deployment.restart_instance(1)
    print(f"... instance 1 back at {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)


class CpuMeter:
    """CPU seconds per part over the run: every process of every part read twice a second (a part's list holds its
    children already), each process counted from its first reading, or from 0 if it started during the run, to
    its last: the killed instance's processes keep what they used before the crash, its new ones are added."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.start = sum(os.times()[:2])
        self._read(baseline=True)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _read(self, baseline: bool = False) -> None:
        for name, pids in self.deployment.pids().items():
            for pid in pids:
                try:
                    used = _own_cpu(pid)
                except (OSError, ValueError, IndexError):
                    continue  # ended while we looked
                if baseline:
                    self.first[pid] = used
                self.last[pid] = (name, used)

    def _loop(self) -> None:
        while not self._stopped.wait(0.5):
            self._read()

    def stop(self) -> dict[str, float]:
        """Stop reading; CPU seconds per part, and the load generator's (this process)."""
        self._stopped.set()
        self._thread.join()
        self._read()
        found: dict[str, float] = {"load generator": sum(os.times()[:2]) - self.start}
        for pid, (name, used) in self.last.items():
            found[name] = found.get(name, 0.0) + used - self.first.get(pid, 0.0)
        return found


def _own_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(deployment: Deployment, users: list[User]) -> list[str]:
    """What the database holds against what each user sent: a list of problems (empty: all good)."""
    problems = []
    by_user: dict[str, dict[str, Any]] = {}
    with psycopg.connect(deployment.database_url) as connection:
        for name, status in connection.execute("SELECT user_id, status FROM migration_sessions"):
            by_user.setdefault(name, {"sessions": [], "rows": [], "ledger": []})["sessions"].append(status)
        for name, source_digest in connection.execute("SELECT user_id, source_digest FROM tasks"):
            by_user.setdefault(name, {"sessions": [], "rows": [], "ledger": []})["rows"].append(source_digest)
        ledger = connection.execute(
            "SELECT l.user_id, l.digest, l.outcome FROM migration_ledger l JOIN migration_sessions s"
            " ON s.id = l.session_id AND s.user_id = l.user_id WHERE s.client_session_id = 'release-day'"
        )
        for name, record_digest, outcome in ledger:
            by_user[name]["ledger"].append((record_digest, outcome))
    for user in users:
        mine = by_user.get(user.name, {"sessions": [], "rows": [], "ledger": []})
        sent = Counter(digest(record) for record in user.records)
        if user.error or not user.verdict.get("verified"):
            problems.append(f"{user.name}: not verified ({user.error or user.verdict})")
            continue
        if Counter(each for each, _ in mine["ledger"]) != sent:
            problems.append(f"{user.name}: the ledger holds {len(mine['ledger'])} entries for {len(user.records)}")
        in_rows = Counter(each for each, outcome in mine["ledger"] if outcome in ("inserted", "updated", "unchanged"))
        if Counter(mine["rows"]) != in_rows:
            problems.append(f"{user.name}: {len(mine['rows'])} rows for {sum(in_rows.values())} records held in rows")
        if len(set(mine["rows"])) != len(mine["rows"]):
            problems.append(f"{user.name}: a record is in two rows")
    return problems


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def report(users: list[User], wall: float, cpu: dict[str, float], problems: list[str], options: Any) -> str:
    records = sum(len(user.records) for user in users)
    latencies = [value for user in users for value in user.latencies]
    answers: Counter[str] = Counter()
    for user in users:
        answers.update(user.answers)
    verified = sum(1 for user in users if user.verdict.get("verified") and not user.error)
    kinds = Counter(user.kind for user in users)
    sizes = sorted(len(user.records) for user in users)
    lines = [
        f"release day: {options.users:,} users over {options.seconds} s, {options.instances} instances x "
        f"{options.workers} sync workers behind nginx, PgBouncer (transaction pooling), PostgreSQL, Redis; "
        f"batches of {options.batch}; {os.cpu_count()} cores"
        + ("" if options.no_kill else f"; instance 1 killed at {options.seconds / 2:.0f} s, back 5 s later"),
        f"users       {dict(kinds)}; records per user: median {statistics.median(sizes):.0f}, "
        f"p95 {percentile(sizes, 0.95):.0f}, max {sizes[-1]:,}; {records:,} records in all",
        f"completed   {verified:,} of {len(users):,} users verified",
        f"database    {DATABASE_OK if not problems else f'{len(problems)} problems'}",
        f"wall        {wall:.1f} s from the first arrival to the last verdict; {records / wall:,.0f} records/s overall",
        f"batches     {len(latencies):,} batch requests; latency p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies, default=0) * 1000:.0f} ms",
        "answers     " + ", ".join(f"{code or 'ok'}: {count:,}" for code, count in answers.most_common()),
        "CPU s       " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(cpu.items())),
    ]
    if problems:
        lines += ["problems:"] + [f"  {problem}" for problem in problems[:20]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="users arrive over this many seconds (60)")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="sync workers per instance (2)")
    parser.add_argument("--batch", type=int, default=500, help="records per batch (the page's default, 500)")
    parser.add_argument("--threads", type=int, default=200, help="users migrating at once, at most (200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-kill", action="store_true", help="no instance is killed")
    options = parser.parse_args()
    if options.users < 1 or options.seconds <= 0 or options.instances < 2 or options.workers < 1:
        parser.error("--users and --seconds must be positive, --instances at least 2, --workers at least 1")
    with Deployment(instances=options.instances, workers=options.workers) as deployment:
        print("... encoding every user's bodies", file=sys.stderr, flush=True)
        users = make_users(options, deployment.env["LSMIGRATE_SECRET_KEY"])
        seed_changed(deployment.url, users, options.batch)
        print(f"... {options.users:,} users arriving over {options.seconds:.0f} s", file=sys.stderr, flush=True)
        wall, cpu = run(deployment, users, options)
        problems = check(deployment, users)
        print(report(users, wall, cpu, problems, options))


if __name__ == "__main__":
    main()
