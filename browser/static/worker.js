/* lsmigrate's dedicated worker (a module worker): Pyodide boots here, and the runner extracts, validates, maps,
 * backs up (IndexedDB), compresses, uploads and verifies here, so the page's thread never waits on any of it.
 *
 * The page's thread (loader.js) keeps what only it can do: localStorage. The runner reads it through
 * `readStorage` (the page reads it in slices and sends the migratable keys' values) and cleans up through
 * `swap` (compare-and-set on the page's thread, where nothing of the app runs in between).
 *
 * Messages, page -> worker: {type: "boot", config}; {type: "call", id, name: "run" | "finish" | "memory", args};
 * {type: "answer", id, value | error} (to an "ask"); {type: "online", value} (the page went online or offline).
 * Worker -> page: {type: "booted"} or {type: "boot_failed", message}; {type: "result", id, value | error};
 * {type: "event", name, detail} (JSON text: the page dispatches it on window); {type: "ask", id, op, args}
 * (op "readStorage" or "swap").
 */
import { bootPython, makeHost, wasmBytes } from "./runtime.js";

let booting = null;
let python = null;
const asks = new Map();
let nextAsk = 1;

/* Ask the page's thread to do what only it can; a promise of its answer. */
function ask(op, args = []) {
  const id = nextAsk;
  nextAsk += 1;
  return new Promise((resolve, reject) => {
    asks.set(id, { resolve, reject });
    postMessage({ type: "ask", id, op, args });
  });
}

const forward = (name, detail) => postMessage({ type: "event", name, detail });

/* Whether the page is online, as the page's thread tells it (a worker's own navigator.onLine and its events do
 * not follow every way a page goes offline), and who waits for it to come back. */
let online = navigator.onLine;
let backOnline = [];

function setOnline(value) {
  online = value;
  if (online) {
    for (const resolve of backOnline) resolve();
    backOnline = [];
  }
}

const host = makeHost({
  readStorage: async () => JSON.stringify(await ask("readStorage")),
  swap: (key, expected, value) => ask("swap", [key, expected, value === undefined ? null : value]),
  online: () => online,
  untilOnline: () => (online ? Promise.resolve() : new Promise((resolve) => backOnline.push(resolve))),
});

const calls = {
  run: (options) => python.page.run(options, forward, host),
  finish: (options, report) => python.page.finish(options, report, forward, host),
  memory: () => ({ booted: Boolean(python), wasm_bytes: wasmBytes(python) }),
};

async function boot(config) {
  try {
    booting = booting || bootPython(config);
    python = await booting;
    postMessage({ type: "booted" });
  } catch (error) {
    booting = null;
    postMessage({ type: "boot_failed", message: String((error && error.message) || error) });
  }
}

async function call(message) {
  try {
    const value = await calls[message.name](...message.args);
    postMessage({ type: "result", id: message.id, value });
  } catch (error) {
    postMessage({ type: "result", id: message.id, error: String((error && error.message) || error) });
  }
}

self.addEventListener("message", (event) => {
  const message = event.data || {};
  if (message.type === "answer") {
    const pending = asks.get(message.id);
    asks.delete(message.id);
    if (!pending) return;
    if ("error" in message) pending.reject(new Error(message.error));
    else pending.resolve(message.value);
  } else if (message.type === "online") {
    setOnline(Boolean(message.value));
  } else if (message.type === "boot") {
    boot(message.config);
  } else if (message.type === "call") {
    call(message);
  }
});
