/* lsmigrate loader: decides on page load whether there is anything to
 * migrate. If not, it downloads nothing more (no worker, no request). Otherwise it
 * boots Pyodide from this server in a dedicated Web Worker (worker.js), installs
 * the lsmigrate wheel there and runs the migration, one tab of the origin at a
 * time. The page's thread keeps only what must be done here: reading
 * localStorage (in slices, yielding between them) for the worker, the
 * compare-and-set cleanup, the marker, and relaying the worker's events to
 * window. Where module workers are missing (or cannot start: a
 * Content-Security-Policy without worker-src 'self', lsmigrate served from
 * another origin), the same runtime (runtime.js) runs on this thread, and
 * status() says so.
 *
 * <script src="/lsmigrate/loader.js" data-token="..." data-mode="auto|manual"
 *         data-api="/api/migration" data-batch-size="500"
 *         data-runtime="worker|main-thread"></script>
 *
 * Page API (window.lsmigrate): start({dryRun, batchSize}), status() (with `runtime`: "worker" or
 * "main-thread" once a run began, and `runtime_note`: why not the worker, when it is not),
 * backups() (each with `owner`: "you", "another_user" or "unknown"; of another's only its id and date),
 * restore(id, keys) and downloadBackup(id) (the signed-in user's own backups only), backupDays(),
 * restoreFromServer(keys), needsMigration(), memory() (a promise of {booted, wasm_bytes, runtime}),
 * api(method, path, body) (the migration API with this page's token),
 * finish() (once the last run's conflicts are resolved: verify again, clean up).
 * Performance marks (on the page's timeline, the worker's boot included): lsmigrate:boot, lsmigrate:booted
 * (Pyodide, the wheels and the runner loaded).
 * Events on window: lsmigrate:progress, lsmigrate:conflict, lsmigrate:done,
 * lsmigrate:error (and lsmigrate:warning).
 *
 * Nothing to do: no migratable key holds records to migrate. A key's stores'
 * parts are found by the declared paths (CONFIG.parts), without Pyodide: a key
 * whose record containers are empty or absent, and whose documents are the
 * ones this origin already migrated, holds nothing new (a library re-persisting
 * its initial state after cleanup boots nothing). The marker (localStorage
 * "lsmigrate:done", written after a finished run) remembers each key as it was
 * left (a key kept for an open conflict, a corrupt key; never a key the run
 * left pending) and a fingerprint of each store's part. A key the loader cannot
 * read (an envelope of the app's own) runs whenever its text changed.
 * One tab at a time: the run holds the Web Lock "lsmigrate:migration"; a tab
 * waiting for it hears the outcome on the BroadcastChannel "lsmigrate",
 * takes it as its own and does not run. backups.js (IndexedDB) is imported
 * only when needed.
 *
 * Backups belong to a user (the digest /config gives, never the id) and expire
 * (backups.js MAX_AGE_DAYS). The marker also keeps when the oldest backup
 * expires ("backups_expire_at", ms; null: there is none): a page load prunes
 * only once that time has passed, and otherwise opens no database. Without
 * that entry (localStorage cleared at sign-out) it prunes if the database exists.
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
    runtime: data.runtime === "main-thread" ? "main-thread" : "worker",
  };
  if (data.runtime && !["worker", "main-thread"].includes(data.runtime)) {
    console.warn(`lsmigrate: data-runtime="${data.runtime}" is not "worker" or "main-thread": the worker runs`);
  }
  /* Characters of localStorage read for the worker between two pauses of the page's thread. */
  const READ_SLICE = 1 << 20;

  let current = { state: "idle", report: null, runtime: null, runtime_note: null };
  let booting = null;
  let running = null;
  let pruning = Promise.resolve(); // the page load's pruning, which a run's own noting of the backups follows
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

  function ruleOf(key) {
    const exact = CONFIG.parts["key:" + key];
    if (exact) return exact;
    const index = patterns.findIndex((pattern) => pattern.test(key));
    return index < 0 ? null : CONFIG.parts["pattern:" + CONFIG.patterns[index]];
  }

  /* JSON text with sorted keys: how two JSON values are told equal. */
  function canonical(value) {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (value && typeof value === "object") {
      return `{${Object.keys(value).sort().map((name) => `${JSON.stringify(name)}:${canonical(value[name])}`).join(",")}}`;
    }
    return JSON.stringify(value);
  }

  function walk(value, steps) {
    for (const step of steps) {
      if (typeof step === "string") {
        if (!value || typeof value !== "object" || Array.isArray(value) || !(step in value)) return undefined;
        value = value[step];
      } else {
        if (!Array.isArray(value)) return undefined;
        const wanted = canonical(step[1]);
        value = value.find((item) => item && typeof item === "object" && step[0] in item && canonical(item[step[0]]) === wanted);
      }
    }
    return value;
  }

  /* How many records a store's part holds (1 for a document, or for a part of another kind: Pyodide says why). */
  function countOf(shape, value) {
    if (shape === "array" || shape === "entries") return Array.isArray(value) ? value.length : 1;
    if (shape === "by_id") return value && typeof value === "object" && !Array.isArray(value) ? Object.keys(value).length : 1;
    if (shape === "entity_adapter") {
      const ok = value && Array.isArray(value.ids) && value.entities && typeof value.entities === "object";
      return ok ? Math.max(value.ids.length, Object.keys(value.entities).length) : 1;
    }
    return 1;
  }

  /* Each store's part of a key: {count, print}, or null when it is not there; null for the whole key when the
   * loader cannot read it (not JSON, or an envelope of the app's own). */
  function partsOf(key, raw) {
    const rule = ruleOf(key);
    if (!rule || !rule.loader) return null;
    let tree;
    try {
      tree = JSON.parse(raw);
      if (rule.loader === "json-values") {
        if (!tree || typeof tree !== "object" || Array.isArray(tree)) return null;
        tree = Object.fromEntries(Object.entries(tree).map(([name, text]) => [name, JSON.parse(text)]));
      }
    } catch (error) {
      return null;
    }
    const parts = {};
    for (const store of rule.stores) {
      let value = store.bare_array && Array.isArray(tree) ? tree : walk(tree, store.steps);
      if (store.without && value && typeof value === "object" && !Array.isArray(value)) {
        value = Object.fromEntries(Object.entries(value).filter(([name]) => name !== store.without));
      }
      parts[store.name] = value === undefined ? null : partOf(store.shape, value);
    }
    return parts;
  }

  /* A store's part: how many records, and (computed when first asked: it walks the whole part) its print. */
  function partOf(shape, value) {
    let print = null;
    return {
      count: countOf(shape, value),
      get print() {
        print = print || fingerprint(canonical(value));
        return print;
      },
    };
  }

  const decided = new Map(); // key -> {raw, marker, answer}: a page load asks twice of the same value

  /* True when a key holds records this origin has not migrated yet. */
  function holdsNew(key, raw, marker) {
    const known = decided.get(key);
    if (known && known.raw === raw && known.marker === JSON.stringify(marker)) return known.answer;
    const answer = decideNew(key, raw, marker);
    decided.set(key, { raw, marker: JSON.stringify(marker), answer });
    return answer;
  }

  function decideNew(key, raw, marker) {
    if (marker && marker.left && marker.left[key] === fingerprint(raw)) return false;
    const parts = partsOf(key, raw);
    if (parts === null) return true;
    const migrated = (marker && marker.parts && marker.parts[key]) || {};
    return Object.entries(parts).some(
      ([store, part]) => part && part.count > 0 && (migrated[store] === undefined || part.print !== migrated[store]),
    );
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
    const marker = readMarker();
    return migratableKeys().some((key) => holdsNew(key, localStorage.getItem(key), marker));
  }

  function writeMarker(report) {
    const earlier = readMarker();
    const pending = new Set(report.pending_keys || []);
    const left = {};
    const parts = {};
    for (const key of migratableKeys()) {
      if (pending.has(key)) continue;
      const raw = localStorage.getItem(key);
      left[key] = fingerprint(raw);
      const found = partsOf(key, raw);
      if (found) {
        parts[key] = Object.fromEntries(Object.entries(found).filter(([, part]) => part).map(([store, part]) => [store, part.print]));
      }
    }
    const marker = { session_id: report.session_id, at: new Date().toISOString(), left, parts };
    if (earlier && "backups_expire_at" in earlier) marker.backups_expire_at = earlier.backups_expire_at;
    localStorage.setItem(MARKER, JSON.stringify(marker));
  }

  /* Remember in the marker when the oldest backup expires, so that a page load opens no database before then. */
  async function noteBackups(store) {
    const at = await store.backupsExpireAt();
    const marker = readMarker() || {};
    marker.backups_expire_at = at;
    localStorage.setItem(MARKER, JSON.stringify(marker));
  }

  /* On page load: delete expired backups, only when the marker says one has expired (or cannot say). */
  async function pruneIfDue() {
    const marker = readMarker();
    const due = marker && "backups_expire_at" in marker
      ? marker.backups_expire_at !== null && marker.backups_expire_at <= Date.now()
      : await databaseExists();
    if (!due) return;
    try {
      const store = await backupsModule();
      await store.pruneBackups();
      await noteBackups(store);
    } catch (error) {
      console.warn("lsmigrate: pruning expired backups failed:", error);
    }
  }

  /* Whether lsmigrate's database exists, asked without opening (and so creating) it. */
  async function databaseExists() {
    try {
      if (!("indexedDB" in window) || typeof indexedDB.databases !== "function") return false;
      return (await indexedDB.databases()).some((database) => database.name === "lsmigrate");
    } catch (error) {
      return false; // site storage blocked: nothing was kept
    }
  }

  function backupsModule() {
    return import(CONFIG.static + "backups.js");
  }

  const pause = () => new Promise((resolve) => setTimeout(resolve, 0));

  /* For the worker: every key's name, and the migratable keys' values, read in slices. */
  async function readStorage() {
    const keys = [];
    for (let i = 0; i < localStorage.length; i += 1) keys.push(localStorage.key(i));
    const values = {};
    let read = 0;
    for (const key of keys) {
      if (!isMigratable(key)) continue;
      const value = localStorage.getItem(key);
      if (value === null) continue;
      values[key] = value;
      read += value.length;
      if (read >= READ_SLICE) {
        read = 0;
        await pause();
      }
    }
    return { keys, values };
  }

  /* For the worker: write `value` (null: delete the key) only while it holds `expected`, in one task. */
  function swap(key, expected, value) {
    const found = localStorage.getItem(key);
    if (found === null) return "gone";
    if (found !== expected) return "rewritten";
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
    return "held";
  }

  /* Why the worker cannot be used on this page, or null. */
  function workerUnavailable() {
    if (typeof Worker !== "function") return "this browser has no Web Workers";
    if (new URL(CONFIG.static, location.href).origin !== location.origin) {
      return "lsmigrate's scripts come from another origin, and a worker's script must be this page's";
    }
    return null;
  }

  /* Pyodide in a dedicated module worker; its `booted` rejects when the worker cannot start. */
  function workerEngine() {
    let module = false;
    const options = { get type() { module = true; return "module"; } };
    const worker = new Worker(CONFIG.static + "worker.js", options);
    const calls = new Map();
    let nextCall = 1;
    let started;
    let refused;
    const booted = new Promise((resolve, reject) => { started = resolve; refused = reject; });
    const fail = (error) => {
      refused(error);
      for (const pending of calls.values()) pending.reject(error);
      calls.clear();
    };
    if (!module) {
      worker.terminate();
      fail(new Error("this browser has no module workers"));
    }
    worker.addEventListener("message", (event) => {
      const message = event.data || {};
      if (message.type === "booted") {
        performance.mark("lsmigrate:booted");
        started();
      } else if (message.type === "boot_failed") {
        fail(new Error(message.message));
      } else if (message.type === "event") {
        emit(message.name, JSON.parse(message.detail));
      } else if (message.type === "ask") {
        answer(worker, message);
      } else if (message.type === "result") {
        const pending = calls.get(message.id);
        calls.delete(message.id);
        if (pending && "error" in message) pending.reject(new Error(message.error));
        else if (pending) pending.resolve(message.value);
      }
    });
    worker.addEventListener("error", (event) => {
      event.preventDefault();
      fail(new Error(event.message || "the worker could not start"));
    });
    const tell = () => worker.postMessage({ type: "online", value: navigator.onLine });
    window.addEventListener("online", tell);
    window.addEventListener("offline", tell);
    tell();
    performance.mark("lsmigrate:boot");
    worker.postMessage({ type: "boot", config: CONFIG });
    const call = (name, ...args) =>
      booted.then(() => new Promise((resolve, reject) => {
        const id = nextCall;
        nextCall += 1;
        calls.set(id, { resolve, reject });
        worker.postMessage({ type: "call", id, name, args });
      }));
    return {
      kind: "worker",
      booted,
      run: (options) => call("run", options),
      finish: (options, report) => call("finish", options, report),
      memory: () => call("memory"),
      stop: () => worker.terminate(),
    };
  }

  async function answer(worker, message) {
    try {
      const value = message.op === "readStorage" ? await readStorage() : swap(...message.args);
      worker.postMessage({ type: "answer", id: message.id, value });
    } catch (error) {
      worker.postMessage({ type: "answer", id: message.id, error: `${(error && error.name) || "Error"}: ${(error && error.message) || error}` });
    }
  }

  /* Pyodide on the page's own thread: the fallback, and the way it ran before the worker. */
  async function mainThreadEngine() {
    performance.mark("lsmigrate:boot");
    const runtime = await import(CONFIG.static + "runtime.js");
    const python = await runtime.bootPython(CONFIG);
    performance.mark("lsmigrate:booted");
    const host = runtime.makeHost();
    const forward = (name, detail) => emit(name, JSON.parse(detail));
    return {
      kind: "main-thread",
      run: (options) => python.page.run(options, forward, host),
      finish: (options, report) => python.page.finish(options, report, forward, host),
      memory: async () => ({ booted: true, wasm_bytes: runtime.wasmBytes(python) }),
    };
  }

  let engine = null; // the runtime, once booted
  let engineNote = null; // why it is not the worker, when it is not
  let choosing = null;

  async function chooseEngine() {
    if (defaults.runtime === "worker") {
      engineNote = workerUnavailable();
      if (engineNote === null) {
        let made = null;
        try {
          made = workerEngine();
          await made.booted;
          return made;
        } catch (error) {
          if (made) made.stop();
          engineNote = `the worker could not start: ${error.message}`;
          console.warn(`lsmigrate: ${engineNote}; running on the page's thread`);
        }
      }
    } else {
      engineNote = "asked for (data-runtime)";
    }
    return mainThreadEngine();
  }

  function boot() {
    choosing = choosing || chooseEngine().then((made) => { engine = made; return made; });
    choosing.catch(() => { choosing = null; }); // a failed boot is tried again by the next run
    return choosing;
  }

  /* Diagnostics for benchmarks: whether Pyodide is up, the size of its WebAssembly memory, and where it runs. */
  async function memory() {
    if (!engine) return { booted: false, wasm_bytes: 0, runtime: null };
    return { ...(await engine.memory()), runtime: engine.kind };
  }

  /* What the runner is told besides the options: the stores, and how it reaches localStorage. */
  function runnerOptions(options, made) {
    const worker = made.kind === "worker";
    return { ...options, stores: CONFIG.stores, storage: worker ? "host" : "page", compress: worker };
  }

  async function migrate(options) {
    emit("lsmigrate:progress", { phase: "boot", done: 0, total: 0 });
    let report;
    try {
      const made = await boot();
      current.runtime = made.kind;
      current.runtime_note = engineNote;
      // Keys holding nothing new stay out of the run: the server keeps the copy that held their records.
      const marker = readMarker();
      const settledKeys = migratableKeys().filter((key) => !holdsNew(key, localStorage.getItem(key), marker));
      report = JSON.parse(await made.run(JSON.stringify({ ...runnerOptions(options, made), settledKeys })));
    } catch (error) {
      console.error("lsmigrate:", error);
      report = { state: "failed", error: { code: "runtime_error", message: String(error) } };
    }
    if (report.state === "done" && !options.dryRun) writeMarker(report);
    if (!options.dryRun) {
      // The run may have made (and pruned) backups, failed or not.
      await pruning;
      await backupsModule().then(noteBackups).catch((error) => console.warn("lsmigrate: backups not noted:", error));
    }
    return report;
  }

  function settle(report) {
    current = { ...current, state: report.state === "done" ? "done" : "failed", report };
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
    current = { ...current, state: "running", report: null };
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

  let digest = null;

  /* The signed-in user's digest (from /config, never the id): whose backups are whose. Asked again after a
   * failure; null when the server cannot say. */
  function userDigest() {
    digest = digest || api("GET", "/config").then((config) => config.user_digest || null);
    digest.catch(() => { digest = null; });
    return digest.catch(() => null);
  }

  /* Every backup, newest first, each with whose it is: "you", "another_user" or "unknown" (made before backups
   * named their user, or the server cannot be asked). Of a backup not the user's, only when it was made. */
  async function backups() {
    const [list, owner] = await Promise.all([backupsModule().then((store) => store.listBackups()), userDigest()]);
    return list.map((backup) => {
      const of = backup.meta && backup.meta.user_digest;
      const whose = !owner || !of ? "unknown" : of === owner ? "you" : "another_user";
      return whose === "you" ? { ...backup, owner: whose } : { id: backup.id, created_at: backup.created_at, owner: whose };
    });
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
    const made = await boot();
    const options = JSON.stringify(runnerOptions(defaults, made));
    const finished = JSON.parse(await made.finish(options, JSON.stringify(report)));
    if (finished.state === "failed") return settle(finished);
    writeMarker(finished);
    return settle(finished);
  }

  /* "Restore this browser from the server" (a new device, or a browser cleared): every key the server holds
   * for the user (or those named), rebuilt there, written back with the checks of a backup restore. The keys
   * are remembered as migrated, so the next page load migrates them again only once the app changes them. */
  async function restoreFromServer(keys = null) {
    const held = (await api("GET", "/keys")).keys.map((entry) => entry.key);
    const chosen = keys === null ? held : [...keys];
    const missing = chosen.filter((key) => !held.includes(key));
    if (missing.length) throw new Error(`The server holds no key ${missing.map((k) => `"${k}"`).join(", ")}`);
    const values = {};
    for (const key of chosen) {
      values[key] = (await api("GET", `/keys/${encodeURIComponent(key)}`)).value;
    }
    const written = (await backupsModule()).writeBack(values, chosen);
    const marker = readMarker() || { session_id: null, at: new Date().toISOString(), left: {}, parts: {} };
    marker.left = marker.left || {};
    for (const key of written) marker.left[key] = fingerprint(values[key]);
    localStorage.setItem(MARKER, JSON.stringify(marker));
    return written;
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
    backups,
    backupDays: () => backupsModule().then((store) => store.MAX_AGE_DAYS),
    restore: async (id, keys = null) => {
      const [store, owner] = await Promise.all([backupsModule(), userDigest()]);
      return store.restoreBackup(id, keys, { owner });
    },
    restoreFromServer,
    downloadBackup: async (id) => {
      const [store, owner] = await Promise.all([backupsModule(), userDigest()]);
      return store.downloadBackup(id, { owner });
    },
  };
  pruning = pruneIfDue();
  if (defaults.mode === "auto" && needsMigration()) {
    start();
  }
})();
