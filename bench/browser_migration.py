"""The whole migration in the browser: the demo page moving a full task-store through Pyodide to the real server.

    .venv/bin/python -m bench.browser_migration [--records 10000] [--rich] [--runs 3] [--seed 0]

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

Each run takes a fresh browser profile (Chromium on a new, empty user-data
folder: an empty HTTP cache on disk) and migrates twice: a new user on a new
page (cold), then another new user on another new page of the same profile
(warm: Pyodide and the wheels come from the HTTP cache). Not an
off-the-record `browser.new_context()`: its in-memory HTTP cache does not
keep pyodide.asm.wasm (9.6 MB), so "warm" would download it again.

A migration: seed localStorage from /lsmigrate/static/demo.css (a page of
the origin that runs no loader), load /demo?user=USER (the loader in
automatic mode), wait for `lsmigrate:done`; an `lsmigrate:error` stops the
benchmark with its detail. An unmeasured migration of a few tasks first
warms gunicorn's workers (the wheels are built on a worker's first request).

Measured, all in the page's clock (`performance.now()`, from navigation start):

- boot: the loader's `lsmigrate:booted` mark less its `lsmigrate:boot` mark
  (Pyodide and the wheels downloaded, compiled and loaded, the runner's
  modules imported);
- phases: `performance.now()` at each `lsmigrate:progress` event (an init
  script listens); a phase lasts from its first event to the next phase's
  first (summed if it comes back in another round), `done` until the
  `lsmigrate:done` event;
- after boot: `lsmigrate:done` less the booted mark; total: `lsmigrate:done`
  from navigation start;
- bytes: `transferSize` (0 from the HTTP cache) and `encodedBodySize` of the
  navigation entry and every resource entry that started before done (the
  demo page fetches the server's tasks after done: not counted);
- memory: every ~50 ms, from Python, the JS heap's used size (CDP
  `Runtime.getHeapUsage`) and the WebAssembly memory (`lsmigrate.memory()`);
  the peak of each, and their sum (an upper bound of the peak of both: wasm
  memory never shrinks, so its peak is its last size);
- long tasks: a buffered `PerformanceObserver` for `longtask` (50 ms or
  more; else `long-animation-frame`) from the init script; those that start
  between the booted mark and done, with the phases each covered. Those that
  started during boot are shown beside them, and so is the task the booted
  mark falls in: the loader imports the runner's module in that same task
  (microtasks after the mark), but it started before the mark, so it is
  not among "after boot".

After each migration it checks that the report says done, PostgreSQL holds
exactly `--records` task rows for the user, and `task-store` is gone from
localStorage. The figures are printed, never asserted. Everything it starts
is stopped on the way out, Ctrl-C and errors included.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gunicorn
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Playwright, sync_playwright

from bench.browser_page import (
    SAMPLE_SECONDS,
    STORE_KEY,
    LongTask,
    MigrationError,
    Peak,
    Resource,
    fresh_profile,
    long_tasks_after_boot,
    long_tasks_during_boot,
    migrate_in_page,
    phase_times,
    resources_until_done,
    task_over_booted,
)
from bench.ingest_services import RATE_LIMIT_OFF, ROOT, WORKERS, Services, postgres_version
from lsmigrate.browser.progress import PHASES
from tests.corpus import compact_tasks, js_json, realistic_tasks
from tests.fixtures_services import CHROMIUM

#: Chromium's localStorage quota per origin: 10 MiB of UTF-16, keys and values together.
LOCAL_STORAGE_UNITS = 5 * 1024 * 1024
WARM_UP_RECORDS = 50
INTERRUPTED = threading.Event()
MB = 1_000_000
#: The issue's targets.
AFTER_BOOT_TARGET = 1.5  # s
TOTAL_COLD_TARGET = 5.0  # s
MEMORY_TARGET = 150 * MB
LONG_TASK_TARGET = 100.0  # ms


@dataclass
class Measurement:
    """One migration in the page, with what it cost."""

    name: str
    cold: bool
    boot: float
    after_boot: float
    total: float
    phases: dict[str, float]
    resources: list[Resource]
    peak: Peak
    long_tasks: list[LongTask]
    boot_long_tasks: list[float]
    over_booted: tuple[float, float] | None
    long_task_type: str | None

    def figures(self) -> dict[str, float]:
        """The main table's numbers, by column."""
        return {
            "boot s": self.boot,
            "after boot s": self.after_boot,
            "total s": self.total,
            "transfer MB": sum(r.transfer for r in self.resources) / MB,
            "encoded MB": sum(r.encoded for r in self.resources) / MB,
            "JS heap MB": self.peak.heap / MB,
            "wasm MB": self.peak.wasm / MB,
            "heap+wasm MB": (self.peak.heap + self.peak.wasm) / MB,
            "longest task ms": max((task.duration for task in self.long_tasks), default=0.0),
        }

    def phase_figures(self) -> dict[str, float]:
        """Milliseconds per phase, by phase."""
        return {phase: self.phases.get(phase, 0.0) * 1000 for phase in ("boot", *PHASES)}


def measurement(name: str, cold: bool, seen: dict[str, Any], peak: Peak) -> Measurement:
    """The figures of one migration from what the page recorded and the memory peak."""
    return Measurement(
        name=name,
        cold=cold,
        boot=(seen["booted"] - seen["boot"]) / 1000,
        after_boot=(seen["done"] - seen["booted"]) / 1000,
        total=seen["done"] / 1000,
        phases=phase_times(seen["progress"], seen["done"]),
        resources=resources_until_done(seen),
        peak=peak,
        long_tasks=long_tasks_after_boot(seen),
        boot_long_tasks=long_tasks_during_boot(seen),
        over_booted=task_over_booted(seen),
        long_task_type=seen["longTaskType"],
    )


def check(services: Services, user: str, records: int, seen: dict[str, Any]) -> None:
    """The run is done, PostgreSQL has exactly `records` tasks for the user, `task-store` left localStorage."""
    ((rows,),) = services.rows("SELECT count(*) FROM tasks WHERE user_id = %s", user)
    if seen["state"] != "done" or rows != records or seen["taskStoreLeft"]:
        raise MigrationError(
            f"{user}: state {seen['state']!r}, {rows} task rows for {records} records, "
            f"task-store {'still' if seen['taskStoreLeft'] else 'no longer'} in localStorage"
        )


# --- the runs ------------------------------------------------------------------------------------


def run_pair(playwright: Playwright, services: Services, store: str, records: int, run: int) -> list[Measurement]:
    """One run: a fresh profile, a cold migration, then a warm one in the same profile."""
    measured = []
    with fresh_profile(playwright) as context:
        for cold in (True, False):
            kind = "cold" if cold else "warm"
            user = f"bench-run{run}-{kind}"
            seen, peak = migrate_in_page(context, services.url, user, store)
            check(services, user, records, seen)
            measured.append(measurement(f"run {run} {kind}", cold, seen, peak))
    return measured


def warm_up(playwright: Playwright, services: Services, seed: int) -> str:
    """One unmeasured migration of a few tasks (each gunicorn worker builds the wheels on its first request).

    Returns the browser's version.
    """
    store = task_store(realistic_tasks(WARM_UP_RECORDS, seed + 1))
    user = "bench-warm-up"
    with fresh_profile(playwright) as context:
        seen, _ = migrate_in_page(context, services.url, user, store)
        check(services, user, WARM_UP_RECORDS, seen)
        page = context.new_page()
        version: str = context.new_cdp_session(page).send("Browser.getVersion")["product"]
    return version


def task_store(tasks: list[Any]) -> str:
    """The Zustand store as the app writes it under `task-store`."""
    return js_json({"state": {"tasks": tasks}, "version": 0})


def utf16_units(text: str) -> int:
    """The length of `text` in UTF-16 code units, which is what localStorage's quota counts."""
    return len(text.encode("utf-16-le")) // 2


# --- the report ----------------------------------------------------------------------------------


Row = tuple[str, dict[str, float]]


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {column: statistics.median(row[column] for row in rows) for column in rows[0]}


def _table(rows: list[Row], formats: Callable[[str], str]) -> str:
    columns = list(rows[0][1])
    width = max(len(name) for name, _ in rows)
    widths = {column: max(len(column), 7) for column in columns}
    header = f"{'measurement':<{width}} " + " ".join(f"{column:>{widths[column]}}" for column in columns)
    lines = [header, "-" * len(header)]
    for name, row in rows:
        cells = " ".join(f"{row[column]:>{widths[column]}{formats(column)}}" for column in columns)
        lines.append(f"{name:<{width}} {cells}")
    return "\n".join(lines)


def _with_medians(measurements: list[Measurement], figures: Callable[[Measurement], dict[str, float]]) -> list[Row]:
    rows = [(m.name, figures(m)) for m in measurements]
    for cold in (True, False):
        rows.append(
            (f"median {'cold' if cold else 'warm'}", _median([figures(m) for m in measurements if m.cold == cold]))
        )
    return rows


def _main_format(column: str) -> str:
    return ",.0f" if column.endswith("ms") else ".1f" if column.endswith("MB") else ".2f"


def figures_table(measurements: list[Measurement]) -> str:
    """One row per migration, then the cold and warm medians."""
    return _table(_with_medians(measurements, Measurement.figures), _main_format)


def phases_table(measurements: list[Measurement]) -> str:
    """Milliseconds per phase, one row per migration, then the medians."""
    return _table(_with_medians(measurements, Measurement.phase_figures), lambda column: ",.0f")


def long_task_lines(measurements: list[Measurement]) -> str:
    """Per migration: the long tasks after boot, and the five longest with when and in which phase."""
    kind = measurements[0].long_task_type or "no long-task entry type"
    lines = [f"long tasks between lsmigrate:booted and lsmigrate:done ({kind} entries: 50 ms or more):"]
    for m in measurements:
        total = sum(task.duration for task in m.long_tasks)
        longest = ", ".join(
            f"{task.duration:,.0f} ms at +{task.after_booted:.2f} s ({task.phase})" for task in m.long_tasks[:5]
        )
        lines.append(f"  {m.name}: {len(m.long_tasks)}, {total:,.0f} ms in all; longest: {longest or '-'}")
    lines.append(
        "for comparison, those that started during boot (lsmigrate:boot to lsmigrate:booted): count, ms in all, "
        "longest; and the one the booted mark falls in, if any"
    )
    for m in measurements:
        durations = m.boot_long_tasks or [0.0]
        line = f"  {m.name}: {len(m.boot_long_tasks)}, {sum(durations):,.0f} ms, {durations[0]:,.0f} ms"
        if m.over_booted:
            line += f"; {m.over_booted[0]:,.0f} ms, of which {m.over_booted[1]:,.0f} ms after the mark"
        lines.append(line)
    return "\n".join(lines)


def resource_lines(measurements: list[Measurement]) -> str:
    """The five biggest responses of the first cold and the first warm migration."""
    lines = ["biggest responses (encoded body; transfer 0: from the HTTP cache):"]
    for m in [next(m for m in measurements if m.cold), next(m for m in measurements if not m.cold)]:
        width = max(len(r.path) for r in m.resources[:5])
        lines.append(f"  {m.name + ':':<{width + 2}} {'encoded MB':>10} {'transfer MB':>11}")
        for r in m.resources[:5]:
            lines.append(f"    {r.path:<{width}} {r.encoded / MB:>10.2f} {r.transfer / MB:>11.2f}")
        lines.append(f"    ({len(m.resources)} responses in all)")
    return "\n".join(lines)


def polling_lines(measurements: list[Measurement]) -> str:
    """How often the memory was actually sampled: the main thread answers only between its tasks."""
    lines = ["memory samples (each waits for the page's main thread): count, gap median / max"]
    for m in measurements:
        gaps = [seconds * 1000 for seconds in m.peak.gaps()] or [0.0]
        lines.append(f"  {m.name}: {len(m.peak.times)}, {statistics.median(gaps):,.0f} / {max(gaps):,.0f} ms")
    return "\n".join(lines)


def medians(measurements: list[Measurement], cold: bool) -> dict[str, float]:
    """The median of each main-table column over the cold (or the warm) migrations."""
    return _median([m.figures() for m in measurements if m.cold == cold])


def _verdict(value: float, target: float, unit: str, digits: int) -> str:
    return f"{value:,.{digits}f} {unit} ({'met' if value < target else 'missed'})"


def targets(measurements: list[Measurement]) -> str:
    """The issue's targets against the cold and warm medians."""
    cold, warm = medians(measurements, cold=True), medians(measurements, cold=False)

    def both(column: str, target: float, unit: str, digits: int) -> str:
        return (
            f"cold {_verdict(cold[column], target, unit, digits)}, warm {_verdict(warm[column], target, unit, digits)}"
        )

    return "\n".join(
        [
            "targets (medians):",
            f"  migration after boot < {AFTER_BOOT_TARGET} s: {both('after boot s', AFTER_BOOT_TARGET, 's', 2)}",
            f"  navigation start to done < {TOTAL_COLD_TARGET:.0f} s, cold: "
            f"{_verdict(cold['total s'], TOTAL_COLD_TARGET, 's', 2)}",
            f"  JS heap + wasm memory at the peak < {MEMORY_TARGET / MB:.0f} MB: "
            f"{both('heap+wasm MB', MEMORY_TARGET / MB, 'MB', 1)}",
            f"  longest main-thread task after boot < {LONG_TASK_TARGET:.0f} ms: "
            f"{both('longest task ms', LONG_TASK_TARGET, 'ms', 0)}",
        ]
    )


def header(services: Services, browser: str, options: argparse.Namespace, store: str) -> str:
    """What ran where: the machine, the browser, Pyodide, the server, the records."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    pyodide = json.loads((ROOT / "node_modules" / "pyodide" / "package.json").read_text())["version"]
    size = len(store.encode("utf-8"))
    units = utf16_units(STORE_KEY) + utf16_units(store)
    return "\n".join(
        [
            "lsmigrate in the browser: the demo page migrating localStorage through Pyodide to the server",
            f"machine     {os.cpu_count()} cores, load average {load} before the run",
            f"browser     {browser} ({CHROMIUM}, a new profile per run); Pyodide {pyodide}",
            f"server      gunicorn {gunicorn.__version__}, {WORKERS} sync workers, lsmigrate.server.gunicorn_conf, "
            f"LSMIGRATE_DEMO=1, shipped rate limits; PostgreSQL {postgres_version(services.postgres.conninfo)} "
            "(fsync, synchronous_commit and full_page_writes off); Redis",
            f"records     {options.records:,} {options.kind} (seed {options.seed}) as one Zustand store under "
            f"{STORE_KEY}: {size:,} bytes ({size / MB:.2f} MB), {units / LOCAL_STORAGE_UNITS:.0%} of the origin's "
            "localStorage quota; batches of 1,000 (the demo's default)",
            f"runs        {options.runs}, each on a new profile: a new user on a new page (cold: empty HTTP "
            "cache), then another on a new page of the same profile (warm); memory polled every "
            f"{SAMPLE_SECONDS * 1000:.0f} ms",
        ]
    )


def report(measurements: list[Measurement], records: int) -> str:
    """Every table and list, then the targets."""
    return "\n\n".join(
        [
            figures_table(measurements),
            "time per phase, ms (a phase's first lsmigrate:progress event to the next phase's; done: to "
            "lsmigrate:done)\n" + phases_table(measurements),
            long_task_lines(measurements),
            resource_lines(measurements),
            polling_lines(measurements),
            targets(measurements),
            f"checked: every migration ended done, with exactly {records:,} task rows for its user in PostgreSQL "
            "and task-store gone from localStorage",
        ]
    )


# --- the command ---------------------------------------------------------------------------------


def arguments() -> tuple[argparse.Namespace, str]:
    """The benchmark's command line, and the store it seeds (refused when it exceeds localStorage's quota)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000, help="tasks in task-store (default 10000)")
    parser.add_argument(
        "--rich",
        action="store_true",
        help="realistic tasks with 5 messages (1.6 KB each: about 3,200 fit) instead of compact ones (330 bytes)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs, each a cold and a warm migration (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task generator (default 0)")
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


def _interrupt(signum: int, frame: Any) -> None:
    # Ctrl-C reaches Playwright's driver too, which closes the browser: the benchmark may then
    # stop on the closed page's error rather than on KeyboardInterrupt. Remember which it was.
    INTERRUPTED.set()
    raise KeyboardInterrupt


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
    services = demo_services()
    try:
        _progress("starting PostgreSQL, Redis and gunicorn")
        services.start()
        with sync_playwright() as playwright:
            _progress(f"warming up the workers: one migration of {WARM_UP_RECORDS} tasks")
            browser = warm_up(playwright, services, options.seed)
            print(header(services, browser, options, store), flush=True)
            measurements = []
            for run in range(1, options.runs + 1):
                _progress(f"run {run} of {options.runs}: cold, then warm")
                measurements += run_pair(playwright, services, store, options.records, run)
            print()
            print(report(measurements, options.records))
    finally:
        services.close()


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, PlaywrightError):
        if not INTERRUPTED.is_set():
            raise
        print("interrupted: every server this run started has been stopped", file=sys.stderr)
        sys.exit(130)
