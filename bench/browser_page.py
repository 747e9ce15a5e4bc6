"""The browser side of bench.browser_migration: Chromium, the JS it runs in the demo page, what the page saw.

`fresh_profile` starts Chromium on a new, empty profile; `migrate_in_page`
seeds localStorage, loads the demo page and polls its memory until the
migration is done. The JS: `RECORDER` is an init script that, on every
document of the profile and before any page script, records the
`lsmigrate:progress` events (phase and `performance.now()`), the
`lsmigrate:done` and `lsmigrate:error` events, and the long tasks
(`longtask` entries, else `long-animation-frame`) in `window.__bench`;
`SEED`, `STATE` and `COLLECT` are evaluated by the benchmark. The rest reads
what the page recorded: the time per phase, the long tasks and the
phases they covered, the responses loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, CDPSession, ConsoleMessage, Page, Playwright
from playwright.sync_api import Error as PlaywrightError

from tests.fixtures_services import CHROMIUM, CHROMIUM_ARGS

STORE_KEY = "task-store"
SAMPLE_SECONDS = 0.05
MIGRATION_TIMEOUT = 180.0

RECORDER = """(() => {
  const bench = { progress: [], done: null, error: null, longTasks: [], longTaskType: null, observer: null };
  window.__bench = bench;
  performance.setResourceTimingBufferSize(2000);
  window.addEventListener("lsmigrate:progress", (event) => {
    bench.progress.push({ phase: event.detail.phase, at: performance.now() });
  });
  window.addEventListener("lsmigrate:done", (event) => {
    bench.done = { at: performance.now(), report: event.detail };
  });
  window.addEventListener("lsmigrate:error", (event) => {
    bench.error = event.detail;
  });
  const supported = PerformanceObserver.supportedEntryTypes || [];
  bench.longTaskType = ["longtask", "long-animation-frame"].find((type) => supported.includes(type)) || null;
  const keep = (entries) => {
    for (const entry of entries) bench.longTasks.push({ start: entry.startTime, duration: entry.duration });
  };
  if (bench.longTaskType) {
    bench.observer = new PerformanceObserver((list) => keep(list.getEntries()));
    bench.observer.observe({ type: bench.longTaskType, buffered: true });
  }
})();"""

#: Replaces localStorage with the given keys and values (run on a page of the origin that runs no loader).
SEED = """(stores) => {
  localStorage.clear();
  for (const [key, value] of Object.entries(stores)) localStorage.setItem(key, value);
}"""

#: Polled while the migration runs: finished yet, its error if any, and the loader's memory figures.
STATE = """() => ({
  done: Boolean(window.__bench && window.__bench.done),
  error: window.__bench ? window.__bench.error : null,
  memory: window.lsmigrate ? window.lsmigrate.memory() : null,
})"""

#: Everything measured in the page, read once `lsmigrate:done` has fired.
COLLECT = """() => {
  const bench = window.__bench;
  if (bench.observer) bench.observer.takeRecords().forEach((entry) => {
    bench.longTasks.push({ start: entry.startTime, duration: entry.duration });
  });
  const mark = (name) => {
    const found = performance.getEntriesByName(name, "mark");
    return found.length ? found[0].startTime : null;
  };
  const resource = (entry) => ({
    name: entry.name, transfer: entry.transferSize, encoded: entry.encodedBodySize, start: entry.startTime,
  });
  return {
    boot: mark("lsmigrate:boot"),
    booted: mark("lsmigrate:booted"),
    progress: bench.progress,
    done: bench.done.at,
    state: bench.done.report.state,
    resources: [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")]
      .map(resource),
    longTaskType: bench.longTaskType,
    longTasks: bench.longTasks,
    taskStoreLeft: localStorage.getItem("task-store") !== null,
  };
}"""


class MigrationError(RuntimeError):
    """The page reported `lsmigrate:error`, or the migration's result is not what was seeded."""


@dataclass(frozen=True)
class LongTask:
    """A main-thread task of 50 ms or more after boot: when it started (s after booted), how long, in which phase."""

    after_booted: float
    duration: float
    phase: str


@dataclass(frozen=True)
class Resource:
    """A response the page loaded: its path, bytes over the wire (0 from the cache), and its body's size."""

    path: str
    transfer: int
    encoded: int


@dataclass
class Peak:
    """The largest JS heap and WebAssembly memory seen while sampling, and when the samples were taken."""

    heap: int = 0
    wasm: int = 0
    times: list[float] = field(default_factory=list)

    def gaps(self) -> list[float]:
        """Seconds between consecutive samples (a busy main thread answers late)."""
        return [later - earlier for earlier, later in zip(self.times, self.times[1:], strict=False)]


@contextmanager
def fresh_profile(playwright: Playwright) -> Iterator[BrowserContext]:
    """Chromium on a new, empty profile: its own HTTP cache on disk, empty, as a first-time visitor has."""
    profile = tempfile.mkdtemp(prefix="lsmigrate-bench-chromium-")
    try:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context.add_init_script(RECORDER)
            yield context
        finally:
            try:
                context.close()
            except PlaywrightError:
                pass  # already closed: on Ctrl-C, Playwright's driver closes the browser itself
    finally:
        _remove_profile(profile)


def _remove_profile(folder: str) -> None:
    # A browser that Playwright's driver is closing (Ctrl-C) may write its profile for a moment more.
    deadline = time.monotonic() + 10
    shutil.rmtree(folder, ignore_errors=True)
    while os.path.exists(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)


def _print_errors(message: ConsoleMessage) -> None:
    # Errors only: a Python traceback in the page shows up, Pyodide's loading chatter does not;
    # nor does the seeding page's favicon, which the server does not have.
    if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
        print(f"[browser] {message.text}", file=sys.stderr)


def _sample_until_done(page: Page, cdp: CDPSession, user: str) -> Peak:
    """Poll the page every ~50 ms for its JS heap and wasm memory until `lsmigrate:done`."""
    peak = Peak()
    deadline = time.monotonic() + MIGRATION_TIMEOUT
    while True:
        state = page.evaluate(STATE)
        peak.heap = max(peak.heap, int(cdp.send("Runtime.getHeapUsage")["usedSize"]))
        peak.wasm = max(peak.wasm, int((state["memory"] or {}).get("wasm_bytes", 0)))
        peak.times.append(time.monotonic())
        if state["error"] is not None:
            raise MigrationError(f"lsmigrate:error for {user}: {json.dumps(state['error'])}")
        if state["done"]:
            return peak
        if time.monotonic() > deadline:
            raise TimeoutError(f"no lsmigrate:done for {user} after {MIGRATION_TIMEOUT:.0f} s")
        page.wait_for_timeout(SAMPLE_SECONDS * 1000)


def migrate_in_page(context: BrowserContext, base_url: str, user: str, store: str) -> tuple[dict[str, Any], Peak]:
    """Seed `task-store` on a new page of the origin, load the demo for `user`, sample until done; what the page saw."""
    page = context.new_page()
    try:
        page.on("console", _print_errors)
        page.on("pageerror", lambda error: print(f"[browser pageerror] {error}", file=sys.stderr))
        page.goto(f"{base_url}/lsmigrate/static/demo.css")
        page.evaluate(SEED, {STORE_KEY: store})
        cdp = context.new_cdp_session(page)
        page.goto(f"{base_url}/demo?user={user}", wait_until="commit")
        peak = _sample_until_done(page, cdp, user)
        return page.evaluate(COLLECT), peak
    finally:
        page.close()


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
    running = [event["phase"] for event in starts if event["at"] <= begin][-1:] or ["before boot"]
    began = [event["phase"] for event in starts if begin < event["at"] <= end]
    return "→".join(running + began)


def long_tasks_after_boot(seen: dict[str, Any]) -> list[LongTask]:
    """The long tasks that started between the booted mark and done, longest first."""
    starts = phase_starts(seen["progress"])
    tasks = [
        LongTask(
            (entry["start"] - seen["booted"]) / 1000,
            entry["duration"],
            phases_during(starts, entry["start"], entry["start"] + entry["duration"]),
        )
        for entry in seen["longTasks"]
        if seen["booted"] <= entry["start"] <= seen["done"]
    ]
    return sorted(tasks, key=lambda task: task.duration, reverse=True)


def long_tasks_during_boot(seen: dict[str, Any]) -> list[float]:
    """How long each long task that started between the boot and booted marks took, longest first."""
    durations = [entry["duration"] for entry in seen["longTasks"] if seen["boot"] <= entry["start"] < seen["booted"]]
    return sorted(durations, reverse=True)


def task_over_booted(seen: dict[str, Any]) -> tuple[float, float] | None:
    """The long task that started before the booted mark and ended after it: its ms, and its ms after the mark."""
    for entry in seen["longTasks"]:
        end = entry["start"] + entry["duration"]
        if entry["start"] < seen["booted"] < end:
            return entry["duration"], end - seen["booted"]
    return None


def resources_until_done(seen: dict[str, Any]) -> list[Resource]:
    """The navigation and the resources that started before done, biggest body first."""
    resources = [
        Resource(urlsplit(entry["name"]).path, int(entry["transfer"]), int(entry["encoded"]))
        for entry in seen["resources"]
        if entry["start"] <= seen["done"]
    ]
    return sorted(resources, key=lambda resource: resource.encoded, reverse=True)
