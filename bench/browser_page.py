"""The browser side of bench.browser_migration: Chromium, the JS it runs in the demo page, what the page saw.

`fresh_profile` starts Chromium on a new, empty profile whose every document
gets the init script `RECORDER` (given the runtime) before any page script: it records
the `lsmigrate:progress` events (phase and `performance.now()`), the
`lsmigrate:done` and `lsmigrate:error` events, the long tasks (`longtask`
entries, else `long-animation-frame`) and the benchmark's clicks in
`window.__bench`, and sets `data-runtime` on the loader's script tag as the
parser inserts it (the tag is the demo's, demo/templates/demo.html; the
loader reads its dataset when it runs, after its fetch).

`migrate_in_page` seeds localStorage, emulates the network if asked (CDP
`Network.emulateNetworkConditions` on the page, which Chromium applies to the
page's dedicated workers too; on a worker's own target it is "Not
supported"), loads the demo page and, until `lsmigrate:done`, clicks it every
100 ms (CDP `Input.dispatchMouseEvent`, sent without waiting for the page)
and samples three memories on their own schedules: the page's JS heap and
each worker's (CDP `Runtime.getHeapUsage`, the worker's through a session of
the benchmark's own, `Workers`), and WebAssembly memory (`lsmigrate.memory()`).
The requests of the page and of its worker come from Playwright's request
events: Playwright attaches to a worker and holds it until its own network
tracking is on, where a session of ours would attach too late for the
worker's first requests; a request's bytes received are CDP
`Network.loadingFinished.encodedDataLength` (`Request.sizes()`: headers plus
body as encoded), and its body as sent is the `Content-Length` of the headers
Chromium sent (`all_headers()`, CDP `requestWillBeSentExtraInfo`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, CDPSession, ConsoleMessage, Page, Playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Request as PlaywrightRequest
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from tests.fixtures_services import CHROMIUM, CHROMIUM_ARGS

STORE_KEY = "task-store"
SAMPLE_SECONDS = 0.05
CLICK_SECONDS = 0.1
#: Where the benchmark clicks: the page's top-left margin (the recorder stops the click there anyway).
CLICK_AT = {"x": 2, "y": 2}
MIGRATION_TIMEOUT = 240.0
#: How long a worker may take to answer the benchmark's session (it answers between its tasks).
WORKER_ANSWER_TIMEOUT = 30.0
#: The migration API the runner uploads to (the loader's default `data-api`).
API_PREFIX = "/api/migration/"

RECORDER = """((runtime) => {
  const bench = {
    progress: [], done: null, error: null, longTasks: [], longTaskType: null, observer: null,
    clicks: [], runtimeTagged: false,
  };
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
  // The benchmark's clicks: how long each waited for the page's thread. Stopped here, so no button of the
  // demo ever sees one; the page's own synthetic clicks (isTrusted false) pass.
  window.addEventListener("click", (event) => {
    if (!event.isTrusted) return;
    const now = performance.now();
    bench.clicks.push({ at: now, delay: now - event.timeStamp });
    event.preventDefault();
    event.stopImmediatePropagation();
  }, true);
  const supported = PerformanceObserver.supportedEntryTypes || [];
  bench.longTaskType = ["longtask", "long-animation-frame"].find((type) => supported.includes(type)) || null;
  const keep = (entries) => {
    for (const entry of entries) bench.longTasks.push({ start: entry.startTime, duration: entry.duration });
  };
  if (bench.longTaskType) {
    bench.observer = new PerformanceObserver((list) => keep(list.getEntries()));
    bench.observer.observe({ type: bench.longTaskType, buffered: true });
  }
  // The runtime asked for, on the loader's script tag as the parser inserts it: mutation records are
  // delivered before the parser runs a script, and the loader's is fetched first in any case.
  const tag = (node) => {
    if (node.tagName !== "SCRIPT" || !node.src) return false;
    if (!new URL(node.src, location.href).pathname.endsWith("/lsmigrate/loader.js")) return false;
    node.dataset.runtime = runtime;
    bench.runtimeTagged = true;
    return true;
  };
  new MutationObserver((records, observer) => {
    if (records.some((record) => [...record.addedNodes].some(tag))) observer.disconnect();
  }).observe(document, { childList: true, subtree: true });
})(%s);"""

#: Replaces localStorage with the given keys and values (run on a page of the origin that runs no loader).
SEED = """(stores) => {
  localStorage.clear();
  for (const [key, value] of Object.entries(stores)) localStorage.setItem(key, value);
}"""

#: True once the run ended, done or not.
ENDED = "() => Boolean(window.__bench && (window.__bench.done || window.__bench.error))"

#: The loader's memory figures: a promise since the worker runtime (the worker answers), a plain object before.
MEMORY = "async () => (window.lsmigrate && window.lsmigrate.memory ? await window.lsmigrate.memory() : null)"

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
  const status = window.lsmigrate.status();
  return {
    boot: mark("lsmigrate:boot"),
    booted: mark("lsmigrate:booted"),
    progress: bench.progress,
    done: bench.done.at,
    state: bench.done.report.state,
    storeReport: (bench.done.report.keys || {})["task-store"] || null,
    timeOrigin: performance.timeOrigin,
    resources: [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")]
      .map(resource),
    longTaskType: bench.longTaskType,
    longTasks: bench.longTasks,
    clicks: bench.clicks,
    runtimeTagged: bench.runtimeTagged,
    runtimeReported: "runtime" in status,
    runtime: status.runtime === undefined ? null : status.runtime,
    runtimeNote: status.runtime_note === undefined ? null : status.runtime_note,
    taskStore: localStorage.getItem("task-store"),
  };
}"""


class MigrationError(RuntimeError):
    """The page reported `lsmigrate:error`, ran another runtime than asked, or its result is not what was seeded."""


@dataclass(frozen=True)
class Request:
    """A request of the page or its worker: path, method, start (ms from navigation start), bytes each way.

    `wire` is what came back over the network, headers and body as encoded (0 from the HTTP cache);
    `body` the request body's Content-Length as sent (None without a body).
    """

    path: str
    method: str
    start: float
    wire: int
    encoding: str
    body: int | None
    body_encoding: str


@dataclass
class Samples:
    """The largest value seen of one memory, and when each sample was taken (monotonic seconds)."""

    peak: int = 0
    times: list[float] = field(default_factory=list)

    def add(self, value: int) -> None:
        """One sample."""
        self.peak = max(self.peak, value)
        self.times.append(time.monotonic())

    def max_gap(self) -> float:
        """The longest wait between two samples, in seconds (a busy thread answers late)."""
        return max((later - earlier for earlier, later in itertools.pairwise(self.times)), default=0.0)


@dataclass
class PageRun:
    """What one migration showed: the page's record (COLLECT), the requests, the memories, the clicks sent."""

    seen: dict[str, Any]
    requests: list[Request]
    heap: Samples
    worker_heap: Samples
    wasm: Samples
    clicks_sent: int
    workers: int


class Workers:
    """The page's dedicated workers, attached on the benchmark's own CDP session to ask each for its heap.

    Not flattened: Playwright's CDP session sends to its own target only, so a worker's session is reached
    with `Target.sendMessageToTarget`, and its answers come back as `Target.receivedMessageFromTarget`.
    """

    def __init__(self, cdp: CDPSession) -> None:
        self._cdp = cdp
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.sessions: set[str] = set()
        self.attached = 0

    async def attach(self) -> None:
        """Attach to every dedicated worker the page starts from now on."""
        self._cdp.on("Target.attachedToTarget", self._attached)
        self._cdp.on("Target.detachedFromTarget", lambda event: self.sessions.discard(event["sessionId"]))
        self._cdp.on("Target.receivedMessageFromTarget", self._received)
        await self._cdp.send(
            "Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": False, "flatten": False}
        )

    def _attached(self, event: dict[str, Any]) -> None:
        if event["targetInfo"]["type"] == "worker":
            self.sessions.add(event["sessionId"])
            self.attached += 1

    def _received(self, event: dict[str, Any]) -> None:
        message = json.loads(event["message"])
        future = self._pending.pop(message.get("id", 0), None)
        if future is not None and not future.done():
            future.set_result(message)

    async def call(self, session: str, method: str) -> dict[str, Any]:
        """Send `method` to a worker's session; its result."""
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        message = json.dumps({"id": number, "method": method, "params": {}})
        try:
            await self._cdp.send("Target.sendMessageToTarget", {"sessionId": session, "message": message})
            answer = await asyncio.wait_for(future, WORKER_ANSWER_TIMEOUT)
        finally:
            self._pending.pop(number, None)
        if "error" in answer:
            raise PlaywrightError(f"{method} in a worker: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def heap(self) -> int | None:
        """The JS heap in use, summed over the attached workers; None while there is none."""
        sessions = list(self.sessions)
        if not sessions:
            return None
        results = await asyncio.gather(*(self.call(session, "Runtime.getHeapUsage") for session in sessions))
        return sum(int(result["usedSize"]) for result in results)


@asynccontextmanager
async def fresh_profile(playwright: Playwright, runtime: str) -> AsyncIterator[BrowserContext]:
    """Chromium on a new, empty profile (its own HTTP cache on disk, as a first-time visitor has), asking the
    loader for `runtime` on every page."""
    profile = tempfile.mkdtemp(prefix="lsmigrate-bench-chromium-")
    try:
        context = await playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            await context.add_init_script(RECORDER % json.dumps(runtime))
            yield context
        finally:
            with suppress(PlaywrightError):  # already closed: on Ctrl-C, Playwright's driver closes the browser
                await context.close()
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


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _click_until(cdp: CDPSession, stop: asyncio.Event) -> int:
    """Click the page every 100 ms until `stop`, never waiting for it to take a click; the clicks sent."""
    pending: list[asyncio.Future[Any]] = []
    start = time.monotonic()
    for sent in itertools.count():
        if stop.is_set():
            break
        for kind in ("mousePressed", "mouseReleased"):
            event = {"type": kind, **CLICK_AT, "button": "left", "clickCount": 1}
            pending.append(asyncio.ensure_future(cdp.send("Input.dispatchMouseEvent", event)))
        await _wait(stop, start + (sent + 1) * CLICK_SECONDS - time.monotonic())
    # Each is answered once the page took it: by now the page is idle.
    with suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), WORKER_ANSWER_TIMEOUT)
    return sent


async def _sample_until(read: Callable[[], Awaitable[int | None]], samples: Samples, stop: asyncio.Event) -> None:
    """Sample one memory every ~50 ms until `stop`, and once after."""
    while True:
        try:
            value = await read()
        except (PlaywrightError, TimeoutError):
            value = None  # the page is between documents, or a worker took too long: no sample this time
        if value is not None:
            samples.add(value)
        if stop.is_set():
            return
        await _wait(stop, SAMPLE_SECONDS)


async def _until_ended(page: Page, user: str) -> None:
    """Wait for `lsmigrate:done`; `lsmigrate:error` (or no end at all) is a MigrationError."""
    try:
        await page.wait_for_function(ENDED, polling=SAMPLE_SECONDS * 1000, timeout=MIGRATION_TIMEOUT * 1000)
    except PlaywrightTimeoutError:
        raise MigrationError(f"no lsmigrate:done for {user} after {MIGRATION_TIMEOUT:.0f} s") from None
    error = await page.evaluate("() => window.__bench.error")
    if error is not None:
        raise MigrationError(f"lsmigrate:error for {user}: {json.dumps(error)}")


async def _request(request: PlaywrightRequest, origin: float) -> Request:
    sizes = await request.sizes()
    response = await request.response()
    encoding = (await response.header_value("content-encoding") or "") if response else ""
    headers = await request.all_headers()
    body: int | None = None
    if "content-length" in headers:
        body = int(headers["content-length"])
    elif request.post_data_buffer is not None:
        body = len(request.post_data_buffer)  # no Content-Length header seen: the body Playwright kept
    return Request(
        path=urlsplit(request.url).path,
        method=request.method,
        start=request.timing["startTime"] - origin,
        # From the cache both are 0, less the headers Chromium stored: the body size comes out negative.
        wire=max(0, sizes["responseHeadersSize"] + sizes["responseBodySize"]),
        encoding=encoding,
        body=body,
        body_encoding=headers.get("content-encoding", ""),
    )


async def _requests_until(finished: list[PlaywrightRequest], seen: dict[str, Any]) -> list[Request]:
    """The finished requests that started before done (the demo then fetches the server's tasks: not counted)."""
    requests = await asyncio.gather(*(_request(request, seen["timeOrigin"]) for request in finished))
    return [request for request in requests if request.start <= seen["done"]]


async def migrate_in_page(
    context: BrowserContext, base_url: str, user: str, store: str, network: dict[str, Any] | None
) -> PageRun:
    """Seed `task-store` on a new page of the origin, load the demo for `user` (on `network`: CDP
    emulateNetworkConditions, None for none), click and sample until done; what the page saw."""
    page = await context.new_page()
    try:
        page.on("console", _print_errors)
        page.on("pageerror", lambda error: print(f"[browser pageerror] {error}", file=sys.stderr))
        await page.goto(f"{base_url}/lsmigrate/static/demo.css")
        await page.evaluate(SEED, {STORE_KEY: store})
        cdp = await context.new_cdp_session(page)
        if network is not None:
            await cdp.send("Network.emulateNetworkConditions", network)
        workers = Workers(cdp)
        await workers.attach()
        finished: list[PlaywrightRequest] = []
        page.on("requestfinished", lambda request: finished.append(request))
        heap, worker_heap, wasm = Samples(), Samples(), Samples()

        async def page_heap() -> int:
            return int((await cdp.send("Runtime.getHeapUsage"))["usedSize"])

        async def wasm_bytes() -> int | None:
            memory = await page.evaluate(MEMORY)
            return None if memory is None else int(memory.get("wasm_bytes", 0))

        stop = asyncio.Event()
        clicking = asyncio.ensure_future(_click_until(cdp, stop))
        sampling = [
            asyncio.ensure_future(_sample_until(read, samples, stop))
            for read, samples in ((page_heap, heap), (workers.heap, worker_heap), (wasm_bytes, wasm))
        ]
        try:
            await page.goto(f"{base_url}/demo?user={user}", wait_until="commit")
            await _until_ended(page, user)
        finally:
            stop.set()
            await asyncio.gather(clicking, *sampling)
        seen = await page.evaluate(COLLECT)
        requests = await _requests_until(finished, seen)
        return PageRun(seen, requests, heap, worker_heap, wasm, clicking.result(), workers.attached)
    finally:
        await page.close()


async def browser_version(context: BrowserContext) -> str:
    """Chromium's product string."""
    page = await context.new_page()
    try:
        version: str = (await (await context.new_cdp_session(page)).send("Browser.getVersion"))["product"]
        return version
    finally:
        await page.close()
