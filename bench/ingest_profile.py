"""Where one batch's server time goes: an in-process cost split and a cProfile of the request.

The app runs in the benchmark's process (Flask's test client, no gunicorn)
against the benchmark's PostgreSQL and Redis. For each of a few batches of
fresh records the split times, on the very body sent, the pieces built from
public shared code (the strict JSON parse, the protocol schema, `spec.map`),
then sends the batch and sums the time psycopg spends executing statements
(SQLAlchemy cursor events, by statement and table) and committing. What is
left of the request is the rest: the ingest's plan, SQLAlchemy's compiling
and binding (JSONB values are serialised there), the response's JSON, Flask
and Redis. One more batch is then run under cProfile.
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

import lsmigrate.server
from bench.ingest_load import KEY, encode_json
from lsmigrate.demo.stores import STORES
from lsmigrate.server import create_app
from lsmigrate.server.api.auth import issue_token
from lsmigrate.server.db import db
from lsmigrate.shared.canonical import digest, parse_json
from lsmigrate.shared.protocol import BatchRequest

USER = "bench-profile"
_TABLE = re.compile(r"^\s*(INSERT INTO|UPDATE|DELETE FROM|SELECT\s.*?\sFROM)\s+(\w+)", re.IGNORECASE | re.DOTALL)
_LIBRARY = re.compile(r"^.*/lib/python3\.\d+/((site|dist)-packages/)?")
# Where lsmigrate's subpackages live (the checkout, or wherever PYTHONPATH points).
_PACKAGES = str(Path(lsmigrate.server.__file__).parent.parent) + "/"


def _statement_label(statement: str) -> str:
    found = _TABLE.match(statement)
    if found is None:
        return statement.split(None, 1)[0].upper()
    return f"{found.group(1).split()[0].upper()} {found.group(2)}"


class _SqlClock:
    """Seconds psycopg spends executing statements (by statement kind and table) and committing."""

    def __init__(self, app: Flask) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        dialect = engine.dialect
        commit = dialect.do_commit

        def timed_commit(connection: Any) -> None:
            start = time.perf_counter()
            commit(connection)
            self.seconds["COMMIT"] += time.perf_counter() - start
            self.calls["COMMIT"] += 1

        dialect.do_commit = timed_commit  # type: ignore[method-assign]

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        label = _statement_label(statement)
        if executemany:
            # psycopg runs it as one single-row statement per row, pipelined.
            label += f", executemany of {len(parameters)}"
        self.seconds[label] += time.perf_counter() - conn.info["bench_started"].pop()
        self.calls[label] += 1

    @contextmanager
    def measuring(self) -> Iterator[dict[str, tuple[float, int]]]:
        """Yield a dict that holds, once the block ends, the seconds and calls per label inside it."""
        seconds, calls = dict(self.seconds), dict(self.calls)
        spent: dict[str, tuple[float, int]] = {}
        yield spent
        for label in self.seconds:
            spent[label] = (self.seconds[label] - seconds.get(label, 0.0), self.calls[label] - calls.get(label, 0))


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _label(key: tuple[str, int, str]) -> str:
    path, line, name = key
    if path == "~":
        return name
    path = _LIBRARY.sub("", path).replace(_PACKAGES, "")
    return f"{path}:{line}({name})"


def _top(stats: pstats.Stats, sort: int, count: int) -> list[str]:
    """The `count` entries with the highest own (sort=2) or cumulative (sort=3) time.

    Frames that only pass the whole request on (more than 90% of it cumulated, under 0.1 ms
    their own: the test client, Flask's dispatch) are left out.
    """
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = sorted(
        (
            item
            for item in stats.stats.items()  # type: ignore[attr-defined]
            if not (item[1][3] > 0.9 * total and item[1][2] < 1e-4)
        ),
        key=lambda item: item[1][sort],
        reverse=True,
    )
    lines = [f"    {'cum ms':>8} {'own ms':>8} {'calls':>7}  function"]
    for key, (_, calls, own, cumulative, _) in entries[:count]:
        lines.append(f"    {cumulative * 1000:8.1f} {own * 1000:8.1f} {calls:7d}  {_label(key)}")
    return lines


def profile(database_url: str, redis_url: str, secret_key: str, records: list[Any], batch: int, rounds: int) -> str:
    """The cost split of `rounds` batches (medians) and the cProfile of one more, as text."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": secret_key,
            "RATELIMIT_ENABLED": False,
            "DEMO": True,
        }
    )
    clock = _SqlClock(app)
    with app.app_context():
        headers = {"Authorization": f"Bearer {issue_token(USER)}", "Content-Type": "application/json"}
    client = app.test_client()
    opened = client.post("/api/migration/sessions", json={"client_session_id": "profile"}, headers=headers)
    session_id = opened.get_json()["session_id"]
    created_at = datetime.fromisoformat(opened.get_json()["created_at"])
    spec, schema = STORES.named("tasks"), BatchRequest()

    def send(seq: int) -> bytes:
        chunk = records[seq * batch : (seq + 1) * batch]
        payload = {"key": KEY, "offset": seq * batch, "records": chunk, "digests": [digest(r) for r in chunk]}
        return encode_json(payload)

    def put(client: FlaskClient, seq: int, body: bytes) -> None:
        answer = client.put(f"/api/migration/sessions/{session_id}/batches/{seq}", data=body, headers=headers)
        if answer.status_code != 200 or answer.get_json()["counts"] != {"inserted": batch}:
            raise RuntimeError(f"profile batch {seq} answered {answer.status_code}: {answer.get_data()[:300]!r}")

    put(client, 0, send(0))  # warm-up: first-request imports, the connection pool
    samples: dict[str, list[float]] = defaultdict(list)
    statements: dict[str, int] = {}
    for seq in range(1, rounds + 1):
        body = send(seq)
        text = body.decode("utf-8")
        payload = parse_json(text)
        batch_records = payload["records"]
        samples["parse"].append(_timed(partial(parse_json, text)))
        samples["schema"].append(_timed(partial(schema.load, payload)))
        samples["map"].append(
            _timed(partial(spec.map, batch_records, key=KEY, user_id=USER, migrated_at=created_at, offset=seq * batch))
        )
        cpu = time.process_time()
        with clock.measuring() as sql_seconds:
            samples["request"].append(_timed(partial(put, client, seq, body)))
        samples["request cpu"].append(time.process_time() - cpu)
        for label, (seconds, calls) in sql_seconds.items():
            if not calls:
                continue
            samples[f"sql {label}"].append(seconds)
            statements[label] = calls
    profiler = cProfile.Profile()
    body = send(rounds + 1)
    gc.collect()  # so that the one profiled batch does not carry a full collection the earlier ones built up
    profiler.runcall(put, client, rounds + 1, body)
    with app.app_context():
        db.engine.dispose()
    return _report(samples, statements, pstats.Stats(profiler), batch, rounds, len(body))


def _report(
    samples: dict[str, list[float]],
    statements: dict[str, int],
    stats: pstats.Stats,
    batch: int,
    rounds: int,
    body_bytes: int,
) -> str:
    median = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    request = median["request"]
    sql_labels = sorted((name for name in median if name.startswith("sql ")), key=lambda n: -median[n])
    sql_total = sum(median[name] for name in sql_labels)
    rest = request - median["parse"] - median["schema"] - median["map"] - sql_total

    def line(name: str, ms: float) -> str:
        return f"    {name:<54} {ms:8.1f} ms {ms / request:6.0%}   {ms * 1000 / batch:6.1f} µs/record"

    lines = [
        f"In-process cost of one batch of {batch} ({body_bytes / 1024:.0f} KiB body), median of {rounds} batches;",
        "Flask test client in this process, same PostgreSQL and Redis, no gunicorn:",
        line("whole PUT /batches request (wall)", request),
        line("  this process's CPU in it", median["request cpu"]),
        line("JSON parse of the body (parse_json)", median["parse"]),
        line("protocol schema (BatchRequest.load)", median["schema"]),
        line("validate+map+digest (spec.map)", median["map"]),
        line("SQL: psycopg execute (dumping included), commit", sql_total),
        *(
            line(f"  {label} ({statements[label]}x)", median[f"sql {label}"])
            for label in (name.removeprefix("sql ") for name in sql_labels)
        ),
        line("rest: plan, SQLAlchemy bind/compile, response", rest),
        "",
        "cProfile of one more batch (its overhead inflates Python-heavy code), top by cumulative time:",
        *_top(stats, 3, 30),
        "",
        "top by own time:",
        *_top(stats, 2, 20),
    ]
    return "\n".join(lines)


def worker_profile(directory: str, count: int = 30) -> str:
    """The cProfiles the gunicorn workers wrote to `directory` (bench/gunicorn_profile.py), merged, as text."""
    files = sorted(Path(directory).glob("worker-*.prof"))
    if not files:
        return "no worker profile was written (did the workers exit cleanly?)"
    stats = pstats.Stats(*map(str, files))
    total = stats.total_tt  # type: ignore[attr-defined]
    return "\n".join(
        [
            f"cProfile of the {len(files)} gunicorn workers over the whole run (warm-up included), "
            f"{total:.2f} s of profiled time; top by cumulative time:",
            *_top(stats, 3, count),
            "",
            "top by own time:",
            *_top(stats, 2, count),
        ]
    )
