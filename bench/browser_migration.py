"""The whole migration in the browser: the demo page moving a full task-store through Pyodide to the real server.

    .venv/bin/python -m bench.browser_migration [--records 10000] [--rich] [--runs 3] [--seed 0]
        [--runtimes main-thread,worker] [--networks fast,slow]

Starts a throwaway PostgreSQL and Redis and gunicorn as bench.ingest_services
does (2 sync workers, lsmigrate.server.gunicorn_conf), with the demo on
(LSMIGRATE_DEMO=1) and the shipped rate limits, and Debian's headless
Chromium under Playwright. `--records` compact tasks (tests/corpus.py
`compact_tasks`: the fields of a to-do list, about 330 bytes of JSON each,
3.3 MB for the default 10,000) go into localStorage as one Zustand store,
`task-store`; `--rich` takes realistic tasks with five messages instead
(1.6 KB each). localStorage holds at most 5 Mi UTF-16 code units per origin
in Chromium (about 3,280 rich tasks), so more than that is refused before
anything starts.

Before and after in the same run: each runtime of `--runtimes` (the loader's
`data-runtime`: "main-thread", today's path, and "worker", Pyodide in a
dedicated Web Worker), on each network of `--networks` ("fast": as it is;
"slow": Chromium's emulation at 10 Mbit/s down, 2 Mbit/s up, 40 ms), is
measured once per run, interleaved: for each run, for each network,
main-thread then worker. Each takes a fresh browser profile (Chromium on a
new, empty user-data folder: an empty HTTP cache on disk) and migrates twice:
a new user on a new page (cold), then another new user on another new page
of the same profile (warm: Pyodide and the wheels come from the HTTP cache).
Not an off-the-record `browser.new_context()`: its in-memory HTTP cache does
not keep pyodide.asm.wasm (9.6 MB), so "warm" would download it again.

A migration: seed localStorage from /lsmigrate/static/demo.css (a page of
the origin that runs no loader), load /demo?user=USER (the loader in
automatic mode, `data-runtime` set on its tag by the benchmark's init
script), wait for `lsmigrate:done`; an `lsmigrate:error` stops the benchmark
with its detail. An unmeasured migration of a few tasks first warms
gunicorn's workers (the wheels are built on a worker's first request). How
each figure is measured: bench/README.md and bench/browser_page.py.

After each migration it checks that the report says done, that the runtime
`status()` names is the one asked for (a loader that does not name one, as
before the worker, is shown as "main-thread (flag ignored)"), that
PostgreSQL holds exactly `--records` task rows for the user, and that
`task-store` is as the cleanup reports it left it (stripped of its records,
every other byte as it was; or deleted). The figures are printed, never
asserted. Everything it starts is stopped on the way out, Ctrl-C and errors
included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import gunicorn
import psycopg
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Playwright, async_playwright

from bench.browser_figures import (
    MB,
    NETWORK_NAMES,
    Measurement,
    comparison_table,
    long_task_lines,
    measure,
    migrations_table,
    phases_table,
    response_lines,
    sampling_lines,
    warnings,
)
from bench.browser_page import (
    CLICK_SECONDS,
    SAMPLE_SECONDS,
    STORE_KEY,
    MigrationError,
    browser_version,
    fresh_profile,
    migrate_in_page,
)
from bench.ingest_services import RATE_LIMIT_OFF, ROOT, WORKERS, Services, postgres_version
from tests.corpus import compact_tasks, js_json, realistic_tasks
from tests.fixtures_services import CHROMIUM

#: Chromium's localStorage quota per origin: 10 MiB of UTF-16, keys and values together.
LOCAL_STORAGE_UNITS = 5 * 1024 * 1024
WARM_UP_RECORDS = 50
INTERRUPTED = threading.Event()
#: The loader's `data-runtime` values: today's path first (the "before"), then the worker.
RUNTIMES = ("main-thread", "worker")
#: A runtime that says nothing of where it ran (the loader before the worker): it ran on the main thread.
FLAG_IGNORED = "main-thread (flag ignored)"
SLOW_DOWN = 10_000_000 / 8  # bytes/s
SLOW_UP = 2_000_000 / 8
#: CDP Network.emulateNetworkConditions per network (None: not emulated).
NETWORKS: dict[str, dict[str, Any] | None] = {
    "fast": None,
    "slow": {"offline": False, "latency": 40, "downloadThroughput": SLOW_DOWN, "uploadThroughput": SLOW_UP},
}


@dataclass(frozen=True)
class Cost:
    """Today's seconds (main thread, a quiet 2-core machine, issue 14), from which the duration is estimated."""

    cold: float = 3.0  # s, besides the records
    warm: float = 2.0
    cold_per_record: float = 0.25e-3
    warm_per_record: float = 0.22e-3
    runtime_bytes: float = 15 * MB  # downloaded cold
    per_profile: float = 4.0  # Chromium started and closed, two seedings, two checks

    def profile(self, records: int, store_bytes: int, network: str) -> float:
        """Seconds for one profile's cold and warm migrations (on the slow network, as if nothing were compressed)."""
        seconds = self.per_profile + self.cold + self.warm + records * (self.cold_per_record + self.warm_per_record)
        if network == "slow":
            seconds += self.runtime_bytes / SLOW_DOWN + 2 * store_bytes / SLOW_UP
        return seconds


COST = Cost()


def task_store(tasks: list[Any]) -> str:
    """The Zustand store as the app writes it under `task-store`."""
    return js_json({"state": {"tasks": tasks}, "version": 0})


#: `task-store` once the cleanup took its records out.
STRIPPED_STORE = task_store([])


def check(services: Services, user: str, records: int, seen: dict[str, Any]) -> None:
    """The run is done, PostgreSQL has exactly `records` tasks for the user, and `task-store` is as the cleanup
    says it left it: stripped of its records (every other byte as it was) or deleted."""
    ((rows,),) = services.rows("SELECT count(*) FROM tasks WHERE user_id = %s", user)
    cleanup = (seen["storeReport"] or {}).get("cleanup")
    left = seen["taskStore"]
    expected = {"stripped": STRIPPED_STORE, "deleted": None}
    if seen["state"] != "done" or rows != records or cleanup not in expected or left != expected[cleanup]:
        shown = "nothing" if left is None else f"{len(left):,} characters" if len(left) > 200 else repr(left)
        raise MigrationError(
            f"{user}: state {seen['state']!r}, {rows} task rows for {records} records, cleanup {cleanup!r}, "
            f"task-store holds {shown}; the report's entry for it: {json.dumps(seen['storeReport'])}"
        )


def runtime_ran(asked: str, seen: dict[str, Any]) -> str:
    """Where the run ran, by `status().runtime`; a MigrationError when it is not where it was asked to."""
    if not seen["runtimeTagged"]:
        raise MigrationError("the demo page has no script tag for /lsmigrate/loader.js to set data-runtime on")
    if not seen["runtimeReported"]:
        return FLAG_IGNORED
    if seen["runtime"] != asked:
        raise MigrationError(
            f"asked for the {asked} runtime (data-runtime), but status().runtime is {seen['runtime']!r} "
            f"({seen['runtimeNote'] or 'no note'}): the comparison would be bogus"
        )
    return asked


# --- the runs ------------------------------------------------------------------------------------


async def run_profile(
    playwright: Playwright, services: Services, options: argparse.Namespace, store: str, run: int, network: str,
    runtime: str,
) -> list[Measurement]:  # fmt: skip
    """A fresh profile asking for `runtime` on `network`: a cold migration, then a warm one in the same profile."""
    measured = []
    async with fresh_profile(playwright, runtime) as context:
        for cold in (True, False):
            user = f"bench-run{run}-{network}-{runtime}-{'cold' if cold else 'warm'}"
            page = await migrate_in_page(context, services.url, user, store, NETWORKS[network])
            check(services, user, options.records, page.seen)
            ran = runtime_ran(runtime, page.seen)
            measured.append(measure(run, network, runtime, ran, cold, page, len(store.encode("utf-8"))))
    return measured


async def warm_up(playwright: Playwright, services: Services, seed: int, runtime: str) -> str:
    """One unmeasured migration of a few tasks (each gunicorn worker builds the wheels on its first request).

    Returns the browser's version.
    """
    store = task_store(realistic_tasks(WARM_UP_RECORDS, seed + 1))
    user = "bench-warm-up"
    async with fresh_profile(playwright, runtime) as context:
        page = await migrate_in_page(context, services.url, user, store, None)
        check(services, user, WARM_UP_RECORDS, page.seen)
        runtime_ran(runtime, page.seen)
        return await browser_version(context)


async def measure_all(services: Services, options: argparse.Namespace, store: str) -> list[Measurement]:
    """Warm up, print the header, then every run: per network, each runtime on a fresh profile, cold then warm."""
    store_bytes = len(store.encode("utf-8"))
    plan = [
        (run, network, runtime)
        for run in range(1, options.runs + 1)
        for network in options.networks
        for runtime in options.runtimes
    ]
    costs = [COST.profile(options.records, store_bytes, network) for _, network, _ in plan]
    # Ctrl-C cancels this task, so that every page, browser and profile is closed while the loop still runs.
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, _cancel, asyncio.current_task())
    loop.set_exception_handler(_quiet_once_interrupted)
    async with async_playwright() as playwright:
        _progress(f"warming up the workers: one migration of {WARM_UP_RECORDS} tasks")
        browser = await warm_up(playwright, services, options.seed, options.runtimes[0])
        print(header(services, browser, options, store, sum(costs)), flush=True)
        measurements: list[Measurement] = []
        started = time.monotonic()
        for index, (run, network, runtime) in enumerate(plan):
            _progress(f"run {run} of {options.runs}, {NETWORK_NAMES[network]}, {runtime}: cold, then warm")
            measured = await run_profile(playwright, services, options, store, run, network, runtime)
            measurements += measured
            elapsed = time.monotonic() - started
            left = sum(costs[index + 1 :]) * elapsed / sum(costs[: index + 1])
            times = ", ".join(f"{m.kind} {m.load_done:.1f} s" for m in measured)
            _progress(f"  {times}; {_minutes(elapsed)} so far, about {_minutes(left)} to go")
    return measurements


def utf16_units(text: str) -> int:
    """The length of `text` in UTF-16 code units, which is what localStorage's quota counts."""
    return len(text.encode("utf-16-le")) // 2


# --- the report ----------------------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s" if seconds >= 60 else f"{seconds:.0f} s"


def header(services: Services, browser: str, options: argparse.Namespace, store: str, estimate: float) -> str:
    """What ran where: the machine, the browser, Pyodide, the server, the records, the plan and its duration."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    pyodide = json.loads((ROOT / "node_modules" / "pyodide" / "package.json").read_text())["version"]
    size = len(store.encode("utf-8"))
    units = utf16_units(STORE_KEY) + utf16_units(store)
    networks = "; ".join(f"{network}: {NETWORK_NAMES[network]}" for network in options.networks)
    return "\n".join(
        [
            "lsmigrate in the browser: the demo page migrating localStorage through Pyodide to the server",
            f"machine     {os.cpu_count()} cores, load average {load} before the run",
            f"browser     {browser} ({CHROMIUM}, a new profile per runtime and run); Pyodide {pyodide}",
            f"server      {'nginx (deploy/), PgBouncer, ' if options.server == 'nginx' else ''}"
            f"gunicorn {gunicorn.__version__}, {WORKERS} sync workers, lsmigrate.server.gunicorn_conf, "
            f"LSMIGRATE_DEMO=1, shipped rate limits; PostgreSQL {postgres_version(services.postgres.conninfo)} "
            "(fsync, synchronous_commit and full_page_writes off); Redis",
            f"records     {options.records:,} {options.kind} (seed {options.seed}) as one Zustand store under "
            f"{STORE_KEY}: {size:,} bytes ({size / MB:.2f} MB), {units / LOCAL_STORAGE_UNITS:.0%} of the origin's "
            "localStorage quota; batches of 1,000 (the demo's default)",
            f"runtimes    {', '.join(options.runtimes)} (the loader's data-runtime), interleaved in each run",
            f"networks    {networks}",
            f"runs        {options.runs}, each runtime on each network on a new profile: a new user on a new page "
            "(cold: empty HTTP cache), then another on a new page of the same profile (warm); the page clicked every "
            f"{CLICK_SECONDS * 1000:.0f} ms, memory sampled every {SAMPLE_SECONDS * 1000:.0f} ms",
            f"expected    about {_minutes(estimate)} on a quiet machine (today's main-thread figures, nothing "
            "compressed; the progress lines on stderr say how long is left)",
        ]
    )


def ran_lines(measurements: list[Measurement], runtimes: list[str]) -> str:
    """Where each runtime asked for actually ran, by status().runtime."""
    lines = ["ran (status().runtime):"]
    for runtime in runtimes:
        ran = sorted({m.ran for m in measurements if m.runtime == runtime})
        lines.append(f"  asked {runtime}: {', '.join(ran)}")
    if any(m.ran == FLAG_IGNORED for m in measurements):
        lines.append(
            "  (flag ignored: this loader names no runtime in status() and reads no data-runtime: every column "
            "is today's main-thread path, and the ratios compare it with itself)"
        )
    return "\n".join(lines)


def report(measurements: list[Measurement], options: argparse.Namespace) -> str:
    """The comparison per condition, then every table and list."""
    tables = [
        comparison_table(measurements, options.runtimes, network, cold)
        for network in options.networks
        for cold in (True, False)
    ]
    doubts = warnings(measurements, SLOW_DOWN)
    return "\n\n".join(
        [
            *tables,
            ran_lines(measurements, options.runtimes),
            "✓ / ✗: the median meets / misses the issue's target; memory is the sum of three peaks (page heap, "
            "worker heap, wasm), an upper bound of their peak together",
            migrations_table(measurements),
            "time per phase, ms, medians (a phase's first lsmigrate:progress event to the next phase's; done: to "
            "lsmigrate:done)\n" + phases_table(measurements),
            long_task_lines(measurements),
            response_lines(measurements, options.runtimes),
            sampling_lines(measurements),
            *(["doubtful:\n" + "\n".join(f"  {doubt}" for doubt in doubts)] if doubts else []),
            f"checked: every migration ended done on the runtime asked for, with exactly {options.records:,} task "
            "rows for its user in PostgreSQL and task-store stripped of its records in localStorage",
        ]
    )


# --- the command ---------------------------------------------------------------------------------


def _choices(allowed: tuple[str, ...] | list[str]) -> Any:
    def parse(text: str) -> list[str]:
        chosen = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in chosen if item not in allowed]
        if unknown or not chosen or len(set(chosen)) != len(chosen):
            raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(allowed)}, each at most once")
        return [item for item in allowed if item in chosen]  # today's path first: the ratio is worker / main-thread

    return parse


def arguments() -> tuple[argparse.Namespace, str]:
    """The benchmark's command line, and the store it seeds (refused when it exceeds localStorage's quota)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000, help="tasks in task-store (default 10000)")
    parser.add_argument(
        "--rich",
        action="store_true",
        help="realistic tasks with 5 messages (1.6 KB each: about 3,200 fit) instead of compact ones (330 bytes)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs, each a cold and a warm migration per runtime and network (3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the task generator (default 0)")
    parser.add_argument(
        "--server",
        choices=("gunicorn", "nginx"),
        default="gunicorn",
        help="gunicorn: the pages talk to gunicorn itself; nginx: through the deployment of deploy/ (nginx, "
        "PgBouncer), as in production (default gunicorn)",
    )
    parser.add_argument(
        "--runtimes",
        type=_choices(RUNTIMES),
        default=list(RUNTIMES),
        help="the loader's data-runtime values to compare (default main-thread,worker)",
    )
    parser.add_argument(
        "--networks",
        type=_choices(list(NETWORKS)),
        default=list(NETWORKS),
        help="fast: as it is; slow: 10 Mbit/s down, 2 Mbit/s up, 40 ms (default fast,slow)",
    )
    options = parser.parse_args()
    if options.records < 1 or options.runs < 1:
        parser.error("--records and --runs must be positive")
    options.kind = "realistic tasks with 5 messages" if options.rich else "compact tasks"
    _progress(f"generating {options.records:,} {options.kind}")
    generate = realistic_tasks if options.rich else compact_tasks
    tasks = generate(options.records, options.seed)
    store = task_store(tasks)
    units = utf16_units(STORE_KEY) + utf16_units(store)
    if units > LOCAL_STORAGE_UNITS:
        fits = options.records * (LOCAL_STORAGE_UNITS - utf16_units(STORE_KEY)) // utf16_units(store)
        parser.error(
            f"{options.records:,} {options.kind} are {len(store.encode()):,} bytes of JSON, {units:,} UTF-16 code "
            f"units: more than Chromium's localStorage holds per origin ({LOCAL_STORAGE_UNITS:,}); "
            f"about {fits:,} fit"
        )
    return options, store


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _cancel(task: asyncio.Task[Any] | None) -> None:
    INTERRUPTED.set()
    if task is not None:
        task.cancel()


def _quiet_once_interrupted(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Ctrl-C reaches Playwright's driver too: its own futures then fail with "Connection closed".
    if not INTERRUPTED.is_set():
        loop.default_exception_handler(context)


def _interrupt(signum: int, frame: Any) -> None:
    # Ctrl-C reaches Playwright's driver too, which closes the browser: the benchmark may then
    # stop on the closed page's error rather than on KeyboardInterrupt. Remember which it was.
    INTERRUPTED.set()
    raise KeyboardInterrupt


class ProxiedServices:
    """The demo as deployed (deploy/: nginx buffering in front of one gunicorn instance of WORKERS sync workers,
    PgBouncer, PostgreSQL, Redis), with what the benchmark asks of `Services`."""

    def __init__(self) -> None:
        from deploy.cluster import Deployment

        self.deployment = Deployment(instances=1, workers=WORKERS)
        self.postgres = self.deployment.postgres

    @property
    def url(self) -> str:
        return self.deployment.url

    def start(self) -> None:
        self.deployment.start()

    def close(self) -> None:
        self.deployment.close()

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.deployment.database_url) as connection:
            return connection.execute(query, params).fetchall()


def demo_services() -> Services:
    """The ingest benchmark's servers with the demo on and the shipped rate limits."""
    services = Services()
    services.env["LSMIGRATE_DEMO"] = "1"
    for name in RATE_LIMIT_OFF:
        services.env.pop(name, None)
    return services


def main() -> None:
    """Run the migrations and print the figures."""
    options, store = arguments()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGINT, _interrupt)
    services: Any = ProxiedServices() if options.server == "nginx" else demo_services()
    try:
        _progress("starting PostgreSQL, Redis and gunicorn")
        services.start()
        started = time.monotonic()
        try:
            measurements = asyncio.run(measure_all(services, options, store))
        finally:
            signal.signal(signal.SIGINT, _interrupt)  # the loop's handler is gone with the loop
        print()
        print(report(measurements, options))
        print(f"\ntook {_minutes(time.monotonic() - started)}")
    finally:
        services.close()


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, PlaywrightError, asyncio.CancelledError):
        if not INTERRUPTED.is_set():
            raise
        print("interrupted: every server this run started has been stopped", file=sys.stderr)
        sys.exit(130)
