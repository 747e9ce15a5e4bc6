"""The in-page side of bench.browser_migration: the JS it runs in the demo page, as page.evaluate arguments.

`RECORDER` is an init script: on every document of the context, before any
page script, it records the `lsmigrate:progress` events (phase and
`performance.now()`), the `lsmigrate:done` and `lsmigrate:error` events, and
the long tasks (`longtask` entries, else `long-animation-frame`) in
`window.__bench`. The others are read by the benchmark while and after a
migration runs.
"""

from __future__ import annotations

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
