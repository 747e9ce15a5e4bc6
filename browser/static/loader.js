/* lsmigrate loader: decides on page load whether there is anything to
 * migrate. If not, it downloads nothing more. Otherwise it boots Pyodide from
 * this server, installs the lsmigrate wheel and runs the migration.
 *
 * <script src="/lsmigrate/loader.js" data-token="..." data-mode="auto|manual"
 *         data-api="/api/migration"></script>
 *
 * Page API: window.lsmigrate.start(), window.lsmigrate.status();
 * events on window: lsmigrate:progress, lsmigrate:done, lsmigrate:error.
 */
(() => {
  "use strict";
  const CONFIG = __LSMIGRATE_CONFIG__;
  const script = document.currentScript;
  const options = {
    api: (script && script.dataset.api) || "/api/migration",
    token: (script && script.dataset.token) || "",
    mode: (script && script.dataset.mode) || "auto",
    batchSize: Number((script && script.dataset.batchSize) || 500),
  };

  let current = { state: "idle", report: null };
  let booting = null;
  let running = null;

  function emit(name, detail) {
    window.dispatchEvent(new CustomEvent(name, { detail }));
  }

  const patterns = CONFIG.patterns.map((source) => new RegExp(source));

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

  async function loadRuntime() {
    const { loadPyodide } = await import(CONFIG.pyodide + "pyodide.mjs");
    const pyodide = await loadPyodide({ indexURL: CONFIG.pyodide });
    await pyodide.loadPackage(CONFIG.wheels);
    return pyodide;
  }

  function boot() {
    booting = booting || loadRuntime();
    return booting;
  }

  async function runOnce() {
    current = { state: "running", report: null };
    emit("lsmigrate:progress", { phase: "boot", done: 0, total: 0 });
    let report;
    try {
      const pyodide = await boot();
      const page = pyodide.pyimport(CONFIG.module);
      try {
        report = JSON.parse(
          await page.run(JSON.stringify(options), (name, detail) => emit(name, JSON.parse(detail))),
        );
      } finally {
        page.destroy();
      }
    } catch (error) {
      console.error("lsmigrate:", error);
      report = { state: "failed", error: { code: "runtime_error", message: String(error) } };
    }
    current = { state: report.state === "done" ? "done" : "failed", report };
    emit(current.state === "done" ? "lsmigrate:done" : "lsmigrate:error", report);
    return report;
  }

  function start() {
    running = running || runOnce().finally(() => { running = null; });
    return running;
  }

  function status() {
    return JSON.parse(JSON.stringify(current));
  }

  window.lsmigrate = { start, status, migratableKeys };
  if (options.mode === "auto" && migratableKeys().length > 0) {
    start();
  }
})();
