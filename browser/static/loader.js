/* lsmigrate loader: decides on page load whether there is anything to
 * migrate. If not, it downloads nothing more. Otherwise it boots Pyodide from
 * this server, installs the lsmigrate wheel and runs the migration, one tab
 * of the origin at a time.
 *
 * <script src="/lsmigrate/loader.js" data-token="..." data-mode="auto|manual"
 *         data-api="/api/migration" data-batch-size="500"></script>
 *
 * Page API (window.lsmigrate): start({dryRun, batchSize}), status(),
 * backups(), restore(id, keys), downloadBackup(id), needsMigration(), memory(),
 * api(method, path, body) (the migration API with this page's token),
 * finish() (once the last run's conflicts are resolved: verify again, clean up).
 * Performance marks: lsmigrate:boot, lsmigrate:booted (Pyodide, the wheels and the runner loaded).
 * Events on window: lsmigrate:progress, lsmigrate:conflict, lsmigrate:done,
 * lsmigrate:error (and lsmigrate:warning).
 *
 * Nothing to do: no migratable key, or the marker (localStorage
 * "lsmigrate:done", written after a finished run) lists every migratable key
 * still present with the fingerprint it had then (a key kept for an open
 * conflict, a corrupt key; never a key the run left pending). A key added or
 * changed since makes it run again.
 * One tab at a time: the run holds the Web Lock "lsmigrate:migration"; a tab
 * waiting for it hears the outcome on the BroadcastChannel "lsmigrate",
 * takes it as its own and does not run. backups.js (IndexedDB) is imported
 * only when needed.
 */
(() => {
  "use strict";
  const CONFIG = __LSMIGRATE_CONFIG__;
  const MARKER = "lsmigrate:done";
  const LOCK = "lsmigrate:migration";
  const script = document.currentScript;
  const data = (script && script.dataset) || {};
  const defaults = {
    api: data.api || CONFIG.api,
    token: data.token || "",
    mode: data.mode || "auto",
    batchSize: Number(data.batchSize || 500),
  };

  let current = { state: "idle", report: null };
  let booting = null;
  let running = null;
  const patterns = CONFIG.patterns.map((source) => new RegExp(source));
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("lsmigrate") : null;

  function emit(name, detail) {
    window.dispatchEvent(new CustomEvent(name, { detail }));
  }

  function isMigratable(key) {
    if (CONFIG.ignore_prefix.some((prefix) => key.startsWith(prefix))) return false;
    return CONFIG.keys.includes(key) || patterns.some((pattern) => pattern.test(key));
  }

  function migratableKeys() {
    const keys = [];
    for (let i = 0; i < localStorage.length; i += 1) {
      const key = localStorage.key(i);
      if (isMigratable(key)) keys.push(key);
    }
    return keys.sort();
  }

  /* FNV-1a over the UTF-16 code units, and the length: tells a rewritten value from the one left behind. */
  function fingerprint(text) {
    let hash = 0x811c9dc5;
    for (let i = 0; i < text.length; i += 1) {
      hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
    }
    return `${(hash >>> 0).toString(16)}:${text.length}`;
  }

  function readMarker() {
    try {
      return JSON.parse(localStorage.getItem(MARKER) || "null");
    } catch (error) {
      return null;
    }
  }

  function needsMigration() {
    const keys = migratableKeys();
    if (keys.length === 0) return false;
    const marker = readMarker();
    if (!marker || typeof marker.left !== "object") return true;
    return keys.some((key) => marker.left[key] !== fingerprint(localStorage.getItem(key)));
  }

  function writeMarker(report) {
    const pending = new Set(report.pending_keys || []);
    const left = {};
    for (const key of migratableKeys()) {
      if (!pending.has(key)) left[key] = fingerprint(localStorage.getItem(key));
    }
    localStorage.setItem(MARKER, JSON.stringify({ session_id: report.session_id, at: new Date().toISOString(), left }));
  }

  function backupsModule() {
    return import(CONFIG.static + "backups.js");
  }

  const pause = () => new Promise((resolve) => setTimeout(resolve, 0));

  /* What the Python runner calls: promises of JSON text; errors as "Name: message". */
  async function makeHost() {
    const store = await backupsModule();
    const plain = (promise) =>
      promise.catch((error) => {
        throw new Error(`${(error && error.name) || "Error"}: ${(error && error.message) || error}`);
      });
    return {
      saveBackup: (values, meta) =>
        plain(pause().then(() => store.saveBackup(JSON.parse(values), JSON.parse(meta))).then(JSON.stringify)),
      backupValues: (id) => plain(store.backupValues(id).then((values) => JSON.stringify(values))),
      loadCheckpoint: () => store.loadCheckpoint().then((checkpoint) => JSON.stringify(checkpoint || null), () => "null"),
      saveCheckpoint: (text) => plain(store.saveCheckpoint(JSON.parse(text))),
      clearCheckpoint: () => plain(store.clearCheckpoint()),
      untilOnline: () =>
        navigator.onLine
          ? Promise.resolve()
          : new Promise((resolve) => window.addEventListener("online", () => resolve(), { once: true })),
    };
  }

  let runtime = null;

  async function loadRuntime() {
    performance.mark("lsmigrate:boot");
    const { loadPyodide } = await import(CONFIG.pyodide + "pyodide.mjs");
    const pyodide = await loadPyodide({ indexURL: CONFIG.pyodide });
    await pyodide.loadPackage(CONFIG.wheels);
    const page = pyodide.pyimport(CONFIG.module); // the runner and the shared code, imported once
    performance.mark("lsmigrate:booted");
    runtime = pyodide;
    return page;
  }

  /* Diagnostics for benchmarks: whether Pyodide is up, and the size of its WebAssembly memory. */
  function memory() {
    const heap = runtime && runtime._module && runtime._module.HEAPU8;
    return { booted: Boolean(runtime), wasm_bytes: heap ? heap.byteLength : 0 };
  }

  function boot() {
    booting = booting || loadRuntime();
    return booting;
  }

  async function migrate(options) {
    emit("lsmigrate:progress", { phase: "boot", done: 0, total: 0 });
    let report;
    try {
      const [page, host] = await Promise.all([boot(), makeHost()]);
      const forward = (name, detail) => emit(name, JSON.parse(detail));
      report = JSON.parse(await page.run(JSON.stringify({ ...options, stores: CONFIG.stores }), forward, host));
    } catch (error) {
      console.error("lsmigrate:", error);
      report = { state: "failed", error: { code: "runtime_error", message: String(error) } };
    }
    if (report.state === "done" && !options.dryRun) writeMarker(report);
    return report;
  }

  function settle(report) {
    current = { state: report.state === "done" ? "done" : "failed", report };
    emit(current.state === "done" ? "lsmigrate:done" : "lsmigrate:error", report);
    return report;
  }

  async function lastOutcomeSince(since) {
    try {
      const outcome = await (await backupsModule()).loadOutcome();
      return outcome && outcome.at >= since ? outcome.report : null;
    } catch (error) {
      return null; // no IndexedDB: nothing recorded, run
    }
  }

  async function recordOutcome(report) {
    try {
      await (await backupsModule()).saveOutcome({ at: Date.now(), report });
    } catch (error) {
      console.warn("lsmigrate: the outcome could not be recorded for other tabs:", error);
    }
    channel.postMessage({ type: "finished", report });
  }

  /* Run while holding the origin's lock. A tab that waited takes the outcome of the run that
   * held the lock meanwhile: heard on the channel (which cuts the wait short), or read from
   * IndexedDB once it has the lock (a message may arrive after the lock is released). */
  async function runOnce(options) {
    current = { state: "running", report: null };
    if (!(navigator.locks && channel)) return settle(await migrate(options));
    const since = Date.now();
    const waiting = new AbortController();
    let heard = null;
    const listen = (event) => {
      if (event.data && event.data.type === "finished" && !options.dryRun) {
        heard = event.data.report;
        waiting.abort();
      }
    };
    channel.addEventListener("message", listen);
    try {
      const report = await navigator.locks.request(LOCK, { signal: waiting.signal }, async () => {
        channel.removeEventListener("message", listen);
        const earlier = options.dryRun ? null : await lastOutcomeSince(since);
        if (earlier) return earlier;
        const outcome = await migrate(options);
        if (!options.dryRun) await recordOutcome(outcome);
        return outcome;
      });
      return settle(report);
    } catch (error) {
      if (heard) return settle(heard);
      throw error;
    } finally {
      channel.removeEventListener("message", listen);
    }
  }

  /* The migration API with this page's token: the panel lists and resolves conflicts with it. */
  async function api(method, path, body = undefined) {
    const response = await fetch(defaults.api + path, {
      method,
      headers: {
        ...(defaults.token ? { Authorization: `Bearer ${defaults.token}` } : {}),
        "Content-Type": "application/json",
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (answer && answer.error) || {};
      throw Object.assign(new Error(error.message || `${method} ${path}: ${response.status}`), { code: error.code });
    }
    return answer;
  }

  /* After the last run's open conflicts were resolved: verify its session again and remove the keys it
   * now lists, each only if it still holds the backed-up value (as the runner's cleanup does). */
  async function finish() {
    const report = current.report;
    if (!report || !report.session_id || !report.manifest || report.dry_run) return report;
    const verdict = await api("POST", `/sessions/${report.session_id}/complete`, { manifest: report.manifest });
    for (const [key, counts] of Object.entries(verdict.counts || {})) {
      const entry = report.keys[key];
      if (!entry) continue;
      for (const outcome of CONFIG.outcomes) {
        entry[outcome] = counts[outcome] || 0;
      }
    }
    const backedUp = await (await backupsModule()).backupValues(report.backup_id);
    for (const key of verdict.deletable_keys) {
      const entry = report.keys[key];
      if (!entry || entry.cleaned_up) continue;
      if (localStorage.getItem(key) === backedUp[key]) {
        localStorage.removeItem(key);
        entry.cleaned_up = true;
        delete entry.kept;
      }
    }
    writeMarker(report);
    return settle(report);
  }

  function start(overrides = {}) {
    const options = { ...defaults, ...overrides, dryRun: Boolean(overrides.dryRun) };
    running = running || runOnce(options).finally(() => { running = null; });
    return running;
  }

  function status() {
    return JSON.parse(JSON.stringify(current));
  }

  window.lsmigrate = {
    start,
    status,
    migratableKeys,
    needsMigration,
    memory,
    api,
    finish,
    backups: () => backupsModule().then((store) => store.listBackups()),
    restore: (id, keys = null) => backupsModule().then((store) => store.restoreBackup(id, keys)),
    downloadBackup: (id) => backupsModule().then((store) => store.downloadBackup(id)),
  };
  if (defaults.mode === "auto" && needsMigration()) {
    start();
  }
})();
