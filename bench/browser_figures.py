"""What one migration in the browser cost, and the tables bench.browser_migration prints.

`measure` turns what the page showed (`bench.browser_page.PageRun`) into a
`Measurement`, whose `figures()` are the issue's figures; `target` gives the
issue's target for a figure under a condition (network, cold or warm);
`comparison_table` puts the runtimes side by side for one condition, medians
over the runs, with the ratio worker / main-thread. The rest are the
per-migration tables and lists printed after them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bench.browser_page import API_PREFIX, PageRun, Request, Samples
from lsmigrate.browser.progress import PHASES

MB = 1_000_000
#: Network conditions by option value: what the tables call them.
NETWORK_NAMES = {"fast": "unthrottled", "slow": "throttled (10 Mbit/s down, 2 Mbit/s up, 40 ms)"}
#: The rows of the comparison tables: figure key, label, decimals.
FIGURES = (
    ("longest_task", "longest main-thread task, ms", 0),
    ("long_tasks", "main-thread tasks of 50 ms or more", 0),
    ("click_p50", "click to handler, p50, ms", 0),
    ("click_p99", "click to handler, p99, ms", 0),
    ("click_max", "click to handler, max, ms", 0),
    ("clicks", "clicks handled", 0),
    ("wire", "on the wire, page + worker, MB", 2),
    ("transfer", "transferSize, page's timeline, MB", 2),
    ("uploaded", "uploaded (bodies as sent), MB", 2),
    ("upload_share", "uploaded / task-store's JSON", 2),
    ("load_done", "page load to done, s", 2),
    ("boot", "boot, s", 2),
    ("after_boot", "migration after boot, s", 2),
    ("heap", "JS heap, page, MB", 1),
    ("worker_heap", "JS heap, worker, MB", 1),
    ("wasm", "wasm memory, MB", 1),
    ("memory", "peak memory (sum of the three), MB", 1),
)
_TARGETS = {
    "longest_task": ("<", 50.0),
    "click_p99": ("<", 50.0),
    "upload_share": ("≤", 0.25),
    "memory": ("<", 150.0),
}


def target(key: str, network: str, cold: bool) -> tuple[str, float] | None:
    """The issue's target for a figure under a condition: ("<" or "≤", limit), or None where it sets none."""
    if key == "load_done":
        return ("<", 4.0 if network == "fast" else 10.0) if cold else None
    if key == "wire":
        return ("≤", 5.0) if cold else None
    if key == "after_boot":
        return ("<", 1.5) if network == "fast" else None  # at 2 Mbit/s up, the upload alone takes longer
    return _TARGETS.get(key)


def meets(value: float, goal: tuple[str, float]) -> bool:
    """Whether `value` meets the target."""
    symbol, limit = goal
    return value < limit if symbol == "<" else value <= limit


@dataclass(frozen=True)
class LongTask:
    """A main-thread task of 50 ms or more before done: when it started (s from navigation), how long, the phases."""

    start: float
    duration: float
    phase: str


@dataclass
class Measurement:
    """One migration in the page, with what it cost."""

    run: int
    network: str
    runtime: str
    ran: str
    cold: bool
    boot: float
    after_boot: float
    load_done: float
    phases: dict[str, float]
    long_tasks: list[LongTask]
    long_task_type: str | None
    clicks: list[float]
    clicks_sent: int
    requests: list[Request]
    transfer: int
    heap: Samples
    worker_heap: Samples
    wasm: Samples
    workers: int
    store_bytes: int

    @property
    def kind(self) -> str:
        """ "cold" or "warm"."""
        return "cold" if self.cold else "warm"

    @property
    def name(self) -> str:
        """The migration's name in the tables."""
        return f"run {self.run} {self.network} {self.runtime} {self.kind}"

    def uploads(self) -> list[Request]:
        """The requests that sent a body to the migration API."""
        return [r for r in self.requests if r.path.startswith(API_PREFIX) and r.body is not None]

    def figures(self) -> dict[str, float]:
        """The issue's figures, by key (see FIGURES)."""
        uploaded = sum(r.body or 0 for r in self.uploads())
        memories = (self.heap.peak, self.worker_heap.peak, self.wasm.peak)
        return {
            "longest_task": max((task.duration for task in self.long_tasks), default=0.0),
            "long_tasks": len(self.long_tasks),
            "click_p50": percentile(self.clicks, 50),
            "click_p99": percentile(self.clicks, 99),
            "click_max": max(self.clicks, default=math.nan),
            "clicks": len(self.clicks),
            "wire": sum(r.wire for r in self.requests) / MB,
            "transfer": self.transfer / MB,
            "uploaded": uploaded / MB,
            "upload_share": uploaded / self.store_bytes,
            "load_done": self.load_done,
            "boot": self.boot,
            "after_boot": self.after_boot,
            "heap": self.heap.peak / MB,
            "worker_heap": self.worker_heap.peak / MB,
            "wasm": self.wasm.peak / MB,
            "memory": sum(memories) / MB,
        }

    def phase_figures(self) -> dict[str, float]:
        """Milliseconds per phase, by phase."""
        return {phase: self.phases.get(phase, 0.0) * 1000 for phase in ("boot", *PHASES)}


def percentile(values: Iterable[float], rank: float) -> float:
    """The nearest-rank percentile: the smallest value at least `rank` % of the values do not exceed."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


# --- from what the page recorded ---------------------------------------------------------------


def measure(run: int, network: str, runtime: str, ran: str, cold: bool, page: PageRun, store_bytes: int) -> Measurement:
    """The figures of one migration from what the page recorded."""
    seen = page.seen
    return Measurement(
        run=run,
        network=network,
        runtime=runtime,
        ran=ran,
        cold=cold,
        boot=(seen["booted"] - seen["boot"]) / 1000,
        after_boot=(seen["done"] - seen["booted"]) / 1000,
        load_done=seen["done"] / 1000,
        phases=phase_times(seen["progress"], seen["done"]),
        long_tasks=long_tasks_until_done(seen),
        long_task_type=seen["longTaskType"],
        clicks=[click["delay"] for click in seen["clicks"] if click["at"] <= seen["done"]],
        clicks_sent=page.clicks_sent,
        requests=page.requests,
        transfer=sum(int(entry["transfer"]) for entry in seen["resources"] if entry["start"] <= seen["done"]),
        heap=page.heap,
        worker_heap=page.worker_heap,
        wasm=page.wasm,
        workers=page.workers,
        store_bytes=store_bytes,
    )


def phase_starts(progress: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The progress events that begin a phase (the first one, and each change of phase)."""
    return [
        event for index, event in enumerate(progress) if index == 0 or event["phase"] != progress[index - 1]["phase"]
    ]


def phase_times(progress: list[dict[str, Any]], done_at: float) -> dict[str, float]:
    """Seconds per phase: from its first event to the next phase's first, the last one until done."""
    starts = phase_starts(progress)
    times: dict[str, float] = {}
    for event, following in zip(starts, [*starts[1:], {"at": done_at}], strict=True):
        times[event["phase"]] = times.get(event["phase"], 0.0) + (following["at"] - event["at"]) / 1000
    return times


def phases_during(starts: list[dict[str, Any]], begin: float, end: float) -> str:
    """The phase running at `begin` and those that began by `end` (ms from navigation start): "check→extract"."""
    running = [event["phase"] for event in starts if event["at"] <= begin][-1:] or ["page load"]
    began = [event["phase"] for event in starts if begin < event["at"] <= end]
    return "→".join(running + began)


def long_tasks_until_done(seen: dict[str, Any]) -> list[LongTask]:
    """The long tasks that started between navigation start and done, longest first."""
    starts = phase_starts(seen["progress"])
    tasks = [
        LongTask(
            entry["start"] / 1000,
            entry["duration"],
            phases_during(starts, entry["start"], entry["start"] + entry["duration"]),
        )
        for entry in seen["longTasks"]
        if entry["start"] <= seen["done"]
    ]
    return sorted(tasks, key=lambda task: task.duration, reverse=True)


# --- the tables ----------------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    """The median of the values that are numbers (NaN: not measured), NaN when none is."""
    numbers = [value for value in values if not math.isnan(value)]
    return statistics.median(numbers) if numbers else math.nan


def _number(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def comparison_table(measurements: list[Measurement], runtimes: list[str], network: str, cold: bool) -> str:
    """One condition: a row per figure, a column per runtime (medians over the runs), their ratio, the target."""
    chosen = [m for m in measurements if m.network == network and m.cold == cold]
    columns = {
        runtime: {key: median(m.figures()[key] for m in chosen if m.runtime == runtime) for key, _, _ in FIGURES}
        for runtime in runtimes
    }
    runs = len({m.run for m in chosen})
    title = f"{'cold' if cold else 'warm'}, {NETWORK_NAMES[network]}: medians of {runs} run{'s' * (runs > 1)}"
    ratio = len(runtimes) == 2
    header = ["figure", "target", *runtimes, *([f"{runtimes[1]} / {runtimes[0]}"] if ratio else [])]
    rows = []
    for key, label, digits in FIGURES:
        goal = target(key, network, cold)
        row = [label, f"{goal[0]} {goal[1]:g}" if goal else ""]
        for runtime in runtimes:
            value = columns[runtime][key]
            mark = "" if goal is None or math.isnan(value) else " ✓" if meets(value, goal) else " ✗"
            row.append(_number(value, digits) + (mark or "  "))
        if ratio:
            before, after = columns[runtimes[0]][key], columns[runtimes[1]][key]
            row.append("-" if not before or math.isnan(before) or math.isnan(after) else f"{after / before:.2f}")
        rows.append(row)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [title, _cells(header, widths), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    lines += [_cells(row, widths) for row in rows]
    return "\n".join(lines)


def _cells(cells: list[str], widths: list[int]) -> str:
    pairs = zip(cells, widths, strict=True)
    return "  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(pairs))


Row = tuple[str, dict[str, float]]


def _table(rows: list[Row], formats: Callable[[str], int]) -> str:
    columns = list(rows[0][1])
    width = max(len(name) for name, _ in rows)
    widths = {column: max(len(column), 6) for column in columns}
    header = f"{'migration':<{width}} " + " ".join(f"{column:>{widths[column]}}" for column in columns)
    lines = [header, "-" * len(header)]
    for name, row in rows:
        cells = " ".join(f"{_number(row[column], formats(column)):>{widths[column]}}" for column in columns)
        lines.append(f"{name:<{width}} {cells}")
    return "\n".join(lines)


def migrations_table(measurements: list[Measurement]) -> str:
    """One row per migration, the main figures."""

    def row(m: Measurement) -> dict[str, float]:
        f = m.figures()
        return {
            "load→done s": f["load_done"],
            "boot s": f["boot"],
            "after boot s": f["after_boot"],
            "longest ms": f["longest_task"],
            "tasks": f["long_tasks"],
            "p99 ms": f["click_p99"],
            "clicks": f["clicks"],
            "wire MB": f["wire"],
            "up MB": f["uploaded"],
            "memory MB": f["memory"],
            "workers": m.workers,
        }

    rows = [(m.name, row(m)) for m in measurements]
    return _table(rows, lambda column: 2 if column.endswith(" s") or "MB" in column else 0)


def phases_table(measurements: list[Measurement]) -> str:
    """Milliseconds per phase, the median per network, runtime and cold or warm."""
    groups: dict[str, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(f"{m.network} {m.runtime} {m.kind}", []).append(m)
    rows = [
        (name, {phase: median(m.phase_figures()[phase] for m in group) for phase in group[0].phase_figures()})
        for name, group in groups.items()
    ]
    return _table(rows, lambda column: 0)


def long_task_lines(measurements: list[Measurement]) -> str:
    """Per migration: the long tasks from navigation start to done, and the three longest with when and where."""
    kind = next((m.long_task_type for m in measurements if m.long_task_type), None) or "no long-task entry type"
    lines = [f"main-thread tasks of 50 ms or more, navigation start to done ({kind} entries): count, ms; longest"]
    for m in measurements:
        total = sum(task.duration for task in m.long_tasks)
        longest = ", ".join(f"{t.duration:,.0f} ms at {t.start:.2f} s ({t.phase})" for t in m.long_tasks[:3])
        lines.append(f"  {m.name}: {len(m.long_tasks)}, {total:,.0f} ms; {longest or '-'}")
    return "\n".join(lines)


def response_lines(measurements: list[Measurement], runtimes: list[str]) -> str:
    """Per runtime, the five biggest responses of its first cold and first warm migration, and its uploads."""
    lines = ["biggest responses on the wire (page and worker; 0: from the HTTP cache), and the uploads:"]
    for runtime in runtimes:
        for cold in (True, False):
            m = next(m for m in measurements if m.runtime == runtime and m.cold == cold)
            biggest = sorted(m.requests, key=lambda r: r.wire, reverse=True)[:5]
            width = max(len(r.path) for r in biggest)
            cached = sum(1 for r in m.requests if r.wire == 0)
            lines.append(f"  {m.name}: {len(m.requests)} responses, {cached} with nothing on the wire")
            for r in biggest:
                lines.append(f"    {r.path:<{width}} {r.wire / MB:>8.2f} MB  {r.encoding or 'identity'}")
            uploads = m.uploads()
            encodings = ", ".join(sorted({r.body_encoding or "identity" for r in uploads})) or "-"
            sent = sum(r.body or 0 for r in uploads)
            lines.append(
                f"    uploads: {len(uploads)} request bodies, {sent / MB:.2f} MB for {m.store_bytes / MB:.2f} MB of "
                f"task-store JSON ({encodings})"
            )
    return "\n".join(lines)


def sampling_lines(measurements: list[Measurement]) -> str:
    """How often each memory was sampled: a thread answers only between its tasks."""
    lines = ["memory samples: count, longest gap (page heap / worker heap / wasm)"]
    for m in measurements:
        parts = [f"{len(s.times)}, {s.max_gap() * 1000:,.0f} ms" for s in (m.heap, m.worker_heap, m.wasm)]
        lines.append(f"  {m.name}: " + " / ".join(parts))
    return "\n".join(lines)


def warnings(measurements: list[Measurement], slow_down_bytes_per_s: float) -> list[str]:
    """What makes a figure doubtful: emulation that cannot have applied, a worker never attached, no click."""
    found = []
    for m in measurements:
        wire = sum(r.wire for r in m.requests)
        if m.network == "slow" and wire / slow_down_bytes_per_s > m.load_done:
            found.append(
                f"{m.name}: {wire / MB:.1f} MB arrived in {m.load_done:.1f} s, faster than the emulated network "
                "allows: the emulation did not cover every request"
            )
        if m.ran == "worker" and not m.workers:
            found.append(f"{m.name}: ran in a worker, but no worker target was attached: its heap is missing")
        if not m.clicks:
            found.append(f"{m.name}: no click reached the page before done")
    return found
