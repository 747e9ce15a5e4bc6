/* lsmigrate's runtime: Pyodide with the lsmigrate wheels, and the host the Python runner calls (backups in
 * IndexedDB, the network, compression). The same module runs in the worker (worker.js) and, where workers are
 * missing, on the page's own thread (loader.js): what differs is only how the runner reaches localStorage
 * (page.py: directly, or through the `readStorage` and `swap` the worker adds to the host).
 */
import * as store from "./backups.js";

/* Pyodide, the wheels, and the runner's module (lsmigrate.browser.page), imported once. The lock file is the
 * server's `info` and no packages (the wheels are installed by URL): pyodide-lock.json is never downloaded. */
export async function bootPython(config) {
  const { loadPyodide } = await import(config.pyodide + "pyodide.mjs");
  const lockFileContents = config.lock_info ? { info: config.lock_info, packages: {} } : undefined;
  const pyodide = await loadPyodide({ indexURL: config.pyodide, lockFileContents });
  await pyodide.loadPackage(config.wheels);
  return { pyodide, page: pyodide.pyimport(config.module) };
}

/* The bytes of `text` (UTF-8), gzip-compressed by the browser's CompressionStream. */
export async function gzip(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 0));

/* What the Python runner calls: promises of JSON text; errors as "Name: message". `extra` adds methods. */
export function makeHost(extra = {}) {
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
    online: () => navigator.onLine,
    untilOnline: () =>
      navigator.onLine
        ? Promise.resolve()
        : new Promise((resolve) => globalThis.addEventListener("online", () => resolve(), { once: true })),
    gzip: (text) => plain(gzip(text)),
    ...extra,
  };
}

/* The size of Pyodide's WebAssembly memory, in bytes (0 before it booted). */
export function wasmBytes(python) {
  const heap = python && python.pyodide && python.pyodide._module && python.pyodide._module.HEAPU8;
  return heap ? heap.byteLength : 0;
}
