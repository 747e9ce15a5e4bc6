"""Records/s through the real HTTP ingest path, beside psycopg binary COPY of the same rows (issue 4).

.venv/bin/python -m bench.ingest_http [--records N] [--batch 500] [--clients 1,4] [--profile]

Starts a throwaway PostgreSQL and Redis and gunicorn (2 sync workers, lsmigrate.server.gunicorn_conf),
then for each client count uploads N realistic tasks split over that many
users (one session each, pre-encoded bodies, keep-alive http.client threads),
completes every session, checks what the server wrote, and times a binary
COPY of the same rows into the same (emptied) `tasks` table. Prints records/s,
the ratio to COPY, and the CPU time of the load generator, gunicorn,
PostgreSQL and Redis over each measurement. `--profile` adds the in-process
cost split of one batch and a cProfile of it. Everything it starts is stopped
on the way out, Ctrl-C and errors included.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gunicorn

import lsmigrate.server
from bench.ingest_copy import copy_rows, task_rows
from bench.ingest_load import Client, check, prepare, upload
from bench.ingest_profile import profile, worker_profile
from bench.ingest_services import RATE_LIMIT_OFF, SECRET_KEY, THREADS, WORKERS, Services, postgres_version
from tests.corpus import js_json, realistic_tasks

#: Issue 4's targets: records/s with 1 and 4 clients, and the share of COPY's rate.
TARGETS = {1: 8_000, 4: 15_000}
COPY_SHARE = 0.2
WARM_UP_CLIENTS = 4


@dataclass
class Measurement:
    """One timed run: what was sent, how long it took, and who spent which CPU."""

    name: str
    records: int
    wall: float
    client_cpu: float
    cpu: dict[str, float]
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Records (or rows) per second of wall time."""
        return self.records / self.wall


def _split(records: list[Any], parts: int) -> list[list[Any]]:
    size, extra = divmod(len(records), parts)
    bounds = [0]
    for part in range(parts):
        bounds.append(bounds[-1] + size + (part < extra))
    return [records[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def _cpu_spent(services: Services, run: Any) -> tuple[Any, dict[str, float]]:
    before = services.cpu()
    result = run()
    after = services.cpu()
    return result, {name: after[name] - before.get(name, 0.0) for name in after}


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def _verify_database(services: Services, users: list[str], expected: int) -> None:
    """The tables hold exactly the records sent: one row and one ledger entry each, every session verified."""
    ((rows,),) = services.rows("SELECT count(*) FROM tasks WHERE user_id = ANY(%s)", users)
    ((ledger,),) = services.rows("SELECT count(*) FROM migration_ledger")
    ((verified,),) = services.rows(
        "SELECT count(*) FROM migration_sessions WHERE user_id = ANY(%s) AND status = 'verified'", users
    )
    if (rows, ledger, verified) != (expected, expected, len(users)):
        raise RuntimeError(
            f"expected {expected} rows and ledger entries and {len(users)} verified sessions, "
            f"found {rows} rows, {ledger} ledger entries, {verified} verified sessions"
        )


def measure_http(
    services: Services, tokens: dict[str, str], records: list[Any], batch: int, run_id: str, reconnect: bool = False
) -> tuple[Measurement, list[Client]]:
    """Upload `records` over one client per token; the measurement and the clients (for the COPY)."""
    services.truncate()
    clients = prepare(services.url, tokens, _split(records, len(tokens)), batch, run_id)
    timing, cpu = _cpu_spent(services, lambda: upload(services.url, clients, reconnect))
    check(clients)
    _verify_database(services, list(tokens), len(records))
    name = f"HTTP, {len(tokens)} client{'s' if len(tokens) > 1 else ''}"
    if reconnect:
        name += ", new connection per batch"
    latencies = [seconds for client in clients for seconds in client.latencies]
    return Measurement(name, len(records), timing.wall, timing.client_cpu, cpu, latencies), clients


def measure_copy(services: Services, clients: list[Client], records: list[Any]) -> Measurement:
    """A binary COPY of the rows the HTTP run wrote, into the emptied `tasks` table."""
    chunks = _split(records, len(clients))
    rows = [row for c, chunk in zip(clients, chunks, strict=True) for row in task_rows(c.user, c.session_id, chunk)]
    services.truncate()
    timing, cpu = _cpu_spent(services, lambda: copy_rows(services.postgres.conninfo, rows))
    return Measurement("COPY, same rows", len(rows), timing.wall, timing.client_cpu, cpu)


def warm_up_workers(services: Services, tokens: dict[str, str], records: list[Any], batch: int) -> None:
    """Send batches until every gunicorn worker has served some (its first requests load lazy parts)."""
    for attempt in range(5):
        # A new connection per batch, so that each batch goes to whichever worker accepts it.
        done, _ = measure_http(services, tokens, records, batch, f"warm-up-{attempt}", reconnect=True)
        if all(seconds > 0.05 for name, seconds in done.cpu.items() if name.startswith("worker ")):
            return


@dataclass
class Group:
    """The measurements of one client count: the HTTP runs and the COPY they are compared with."""

    clients: int
    http: list[Measurement]
    copy: Measurement


def _gunicorn_cells(m: Measurement) -> tuple[str, str]:
    """gunicorn's CPU seconds (each worker's in brackets, busiest first) and its µs per record."""
    workers = sorted((seconds for name, seconds in m.cpu.items() if name.startswith("worker ")), reverse=True)
    split = "+".join(f"{seconds:.2f}" for seconds in workers)
    return f"{m.cpu['gunicorn']:.2f} ({split})", f"{m.cpu['gunicorn'] * 1e6 / m.records:.0f}"


def _latency_cell(latencies: list[float]) -> str:
    """The batches' round trips in ms: median, 90th percentile, slowest."""
    if not latencies:
        return "-"
    ordered = sorted(seconds * 1000 for seconds in latencies)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(ordered):.0f}/{p90:.0f}/{ordered[-1]:.0f}"


def _table(groups: list[Group]) -> str:
    width = max(len(m.name) for group in groups for m in group.http)
    header = (
        f"{'measurement':<{width}} {'records':>7} {'wall s':>6} {'records/s':>9} {'of COPY':>7} {'load-gen CPU s':>14} "
        f"{'gunicorn CPU s (workers)':>24} {'µs/record':>9} {'postgres CPU s':>14} {'redis CPU s':>11} "
        f"{'batch ms p50/p90/max':>20}"
    )
    lines = [header, "-" * len(header)]
    for group in groups:
        for m in [*group.http, group.copy]:
            gunicorn_cpu, per_record = ("-", "-") if m is group.copy else _gunicorn_cells(m)
            lines.append(
                f"{m.name:<{width}} {m.records:>7,} {m.wall:>6.2f} {m.rate:>9,.0f} {m.rate / group.copy.rate:>7.0%} "
                f"{m.client_cpu:>14.2f} {gunicorn_cpu:>24} {per_record:>9} "
                f"{m.cpu['postgres']:>14.2f} {m.cpu['redis']:>11.2f} {_latency_cell(m.latencies):>20}"
            )
    return "\n".join(lines)


def _targets(groups: list[Group]) -> str:
    lines = ["targets (issue 4):"]
    for group in groups:
        for m in group.http:
            share = m.rate / group.copy.rate
            verdicts = [f"{share:.0%} of COPY ({'met' if share >= COPY_SHARE else 'missed'}, >= {COPY_SHARE:.0%})"]
            if group.clients in TARGETS:
                target = TARGETS[group.clients]
                verdicts.insert(0, f"{m.rate:,.0f}/s ({'met' if m.rate >= target else 'missed'}, >= {target:,})")
            lines.append(f"  {m.name}: {', '.join(verdicts)}")
    return "\n".join(lines)


def _header(services: Services, records: list[Any], batch: int, seed: int) -> str:
    sizes = [len(js_json(record).encode("utf-8")) for record in records]
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    worker_kind = f"gthread ({services.threads} threads)" if services.threads > 1 else "sync"
    return "\n".join(
        [
            "lsmigrate ingest: the HTTP path beside psycopg binary COPY",
            f"machine     {os.cpu_count()} cores, load average {load} before the run; "
            f"CPython {platform.python_version()}",
            f"server      gunicorn {gunicorn.__version__}, {WORKERS} {worker_kind} workers"
            f"{' with gc.freeze() after loading the app' if services.gc_freeze else ', no gc.freeze()'}; "
            f"PostgreSQL {postgres_version(services.postgres.conninfo)} (fsync, synchronous_commit and "
            "full_page_writes off); Redis cache on",
            f"code        lsmigrate.server from {Path(lsmigrate.server.__file__).parent} (what gunicorn imports too)",
            f"records     {len(records):,} realistic tasks (average {sum(sizes) / len(sizes):,.0f} bytes of JSON, "
            f"seed {seed}), batches of {batch}; rate limits off ({', '.join(f'{k}=false' for k in RATE_LIMIT_OFF)})",
        ]
    )


def arguments() -> argparse.Namespace:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000, help="records per client count (default 20000)")
    parser.add_argument("--batch", type=int, default=500, help="records per batch (default 500)")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts (default 1,4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task generator (default 0)")
    parser.add_argument(
        "--reconnect", action="store_true", help="also measure with a new connection per batch (no keep-alive)"
    )
    parser.add_argument(
        "--threads", type=int, default=THREADS, help=f"threads per gunicorn worker; 1: sync workers (default {THREADS})"
    )
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="serve without lsmigrate.server.gunicorn_conf (whose workers call gc.freeze() once the app is loaded)",
    )
    parser.add_argument("--profile", action="store_true", help="add the in-process cost split and a cProfile")
    parser.add_argument("--profile-rounds", type=int, default=5, help="batches in the cost split (default 5)")
    parser.add_argument(
        "--worker-profile",
        action="store_true",
        help="run each gunicorn worker under cProfile (sync workers, so --threads 1) and print where their time went",
    )
    options = parser.parse_args()
    options.clients = [int(count) for count in options.clients.split(",")]
    if options.records < max(options.clients) or options.batch < 1:
        parser.error("--records must cover every client and --batch must be positive")
    if options.worker_profile and options.threads != 1:
        parser.error("--worker-profile needs sync workers: add --threads 1")
    return options


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Run the measurements and print the figures."""
    options = arguments()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    _progress(f"generating {options.records:,} realistic tasks")
    records = realistic_tasks(options.records, options.seed)
    warm_up = realistic_tasks(2 * WARM_UP_CLIENTS * options.batch, options.seed + 1)
    profiles = tempfile.TemporaryDirectory(prefix="lsmigrate-bench-profile-") if options.worker_profile else None
    services = Services(options.threads, options.gc_freeze, profiles.name if profiles else None)
    try:
        _progress("starting PostgreSQL, Redis and gunicorn")
        services.start()
        users = {count: [f"bench-{count}c-{index}" for index in range(count)] for count in options.clients}
        warm_up_users = [f"bench-warm-up-{index}" for index in range(WARM_UP_CLIENTS)]
        tokens = services.tokens(warm_up_users + [user for group in users.values() for user in group])
        print(_header(services, records, options.batch, options.seed), flush=True)
        _progress("warming up the workers")
        warm_up_workers(services, {user: tokens[user] for user in warm_up_users}, warm_up, options.batch)
        run_id = f"bench-{time.time_ns()}"
        groups = []
        for count in options.clients:
            _progress(f"{count} client(s): {options.records:,} records over HTTP, then the same rows by COPY")
            group_tokens = {user: tokens[user] for user in users[count]}
            http, clients = measure_http(services, group_tokens, records, options.batch, run_id)
            runs = [http]
            if options.reconnect:
                runs.append(measure_http(services, group_tokens, records, options.batch, run_id, reconnect=True)[0])
            groups.append(Group(count, runs, measure_copy(services, clients, records)))
        print(_table(groups))
        print(_targets(groups))
        print(
            "checked: every batch answered 200 with all records inserted, every session completed verified with "
            "task-store deletable, tasks and the ledger held exactly one row per record sent"
        )
        if options.profile:
            _progress("profiling one batch in process")
            services.truncate()
            # The in-process app keeps its instance folder in the run's temporary one, as gunicorn does.
            os.environ["LSMIGRATE_INSTANCE_PATH"] = services.env["LSMIGRATE_INSTANCE_PATH"]
            sample = realistic_tasks((options.profile_rounds + 2) * options.batch, options.seed + 2)
            print()
            print(
                profile(
                    services.postgres.url, services.redis.url, SECRET_KEY, sample, options.batch, options.profile_rounds
                )
            )
    finally:
        services.close()
        if profiles is not None:
            print()
            print(worker_profile(profiles.name))
            profiles.cleanup()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: every server this run started has been stopped", file=sys.stderr)
        sys.exit(130)
