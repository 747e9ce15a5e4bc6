/* lsmigrate backups: owns the IndexedDB database "lsmigrate" (version 1).
 *
 * Before any record leaves the browser, the raw value of every source
 * localStorage key is stored here, gzip-compressed with its sha256, and read
 * back and checked. The database also keeps the migration's resume checkpoint.
 *
 * Object store "backups" (keyPath "id"), one record per backup:
 *   { id:         "<created_at>-<8 hex>", sorts by creation time (to the ms)
 *     created_at: ISO 8601 string
 *     meta:       small JSON object from the caller ({session, user, ...})
 *     entries:    [{ key, bytes, compressed_bytes, sha256, gzip }] }
 * An entry's stored text is JSON.stringify(raw): lossless, because
 * JSON.stringify escapes lone surrogates (\ud800) that UTF-8 cannot hold.
 *   bytes            the UTF-8 byte length of that text
 *   sha256           lowercase hex sha256 of exactly those UTF-8 bytes
 *   gzip             Uint8Array, gzip (CompressionStream) of those bytes
 *   compressed_bytes gzip.byteLength
 * Object store "checkpoints": the resume checkpoint, as its JSON form, under
 * the key "current".
 *
 * Errors are BackupError: `message` says in plain words what failed, `name`
 * keeps the DOM exception's name when there is one (QuotaExceededError, ...).
 */

const DB_NAME = "lsmigrate";
const DB_VERSION = 1;
const BACKUPS = "backups";
const CHECKPOINTS = "checkpoints";
const CHECKPOINT_KEY = "current";
const DAY_MS = 24 * 60 * 60 * 1000;
const DOWNLOAD_FORMAT = "lsmigrate-backup/1";

export class BackupError extends Error {
  constructor(message, { name = "BackupError", cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = name;
  }
}

/** Translate a DOM exception (or anything thrown) into a BackupError that says what failed. */
function failure(what, error) {
  if (error instanceof BackupError) return error;
  const name = error && error.name && error.name !== "Error" ? error.name : "BackupError";
  const detail = name === "QuotaExceededError"
    ? "the browser's storage quota for this site is full"
    : (error && error.message) || name;
  return new BackupError(`${what}: ${detail}`, { name, cause: error });
}

/** Whether this browser exposes IndexedDB (private modes and some sandboxes do not). */
export function available() {
  try {
    return typeof indexedDB !== "undefined" && indexedDB !== null;
  } catch {
    return false; // some browsers throw on access when site storage is blocked
  }
}

function requireIndexedDB() {
  if (!available()) {
    throw new BackupError(
      "IndexedDB is not available in this browser (private browsing or blocked site storage), " +
        "so localStorage cannot be backed up",
    );
  }
}

// ---- connection ----------------------------------------------------------

let connection = null;

function createStores(db) {
  if (!db.objectStoreNames.contains(BACKUPS)) db.createObjectStore(BACKUPS, { keyPath: "id" });
  if (!db.objectStoreNames.contains(CHECKPOINTS)) db.createObjectStore(CHECKPOINTS);
}

function openDatabase() {
  return new Promise((resolve, reject) => {
    requireIndexedDB();
    let blocked = false;
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => createStores(request.result);
    request.onsuccess = () => {
      const db = request.result;
      if (blocked) return db.close(); // the caller already got an error
      // Another tab wants a newer schema: step aside instead of blocking it.
      db.onversionchange = () => { db.close(); connection = null; };
      db.onclose = () => { connection = null; };
      resolve(db);
    };
    request.onerror = () => reject(failure("Could not open the backup database", request.error));
    request.onblocked = () => {
      blocked = true;
      reject(new BackupError(
        "The backup database is held open by another tab of this site; close it and try again",
        { name: "BlockedError" },
      ));
    };
  });
}

/** The shared connection, opened once; reopened after it was closed or failed. */
function database() {
  connection = connection || openDatabase().catch((error) => {
    connection = null;
    throw failure("Could not open the backup database", error);
  });
  return connection;
}

/** Promise for one IDBRequest. */
function settle(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Run `work(store)` in one transaction; resolves with its result once the transaction commits. */
async function transact(storeName, mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(storeName, mode);
    let result;
    tx.oncomplete = () => resolve(result);
    tx.onabort = () => reject(tx.error || new BackupError("The transaction was aborted"));
    Promise.resolve(work(tx.objectStore(storeName))).then(
      (value) => { result = value; },
      (error) => {
        reject(error);
        try { tx.abort(); } catch { /* already finished */ }
      },
    );
  });
}

// ---- encoding ------------------------------------------------------------

function requireCodecs() {
  if (typeof CompressionStream === "undefined" || typeof DecompressionStream === "undefined") {
    throw new BackupError("This browser cannot gzip (no CompressionStream), so no backup can be made");
  }
  if (!globalThis.crypto || !crypto.subtle) {
    throw new BackupError("crypto.subtle is unavailable (the page is not a secure context), so no backup can be made");
  }
}

async function pipe(bytes, transform) {
  const stream = new Blob([bytes]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** JSON round trip: stores only JSON-able data; Maps (Pyodide's default dict conversion) become objects. */
function toJson(value, what) {
  const text = JSON.stringify(value, (_, item) => (item instanceof Map ? Object.fromEntries(item) : item));
  if (text === undefined) throw new BackupError(`The ${what} is not JSON-able`);
  return JSON.parse(text);
}

async function encodeEntry(key, raw) {
  if (typeof raw !== "string") throw new BackupError(`The value of key "${key}" is not a string`);
  const text = new TextEncoder().encode(JSON.stringify(raw));
  const gzip = await pipe(text, new CompressionStream("gzip"));
  return { key, bytes: text.byteLength, compressed_bytes: gzip.byteLength, sha256: await sha256Hex(text), gzip };
}

async function decodeEntry(entry) {
  let raw;
  let digest;
  try {
    const text = await pipe(entry.gzip, new DecompressionStream("gzip"));
    digest = await sha256Hex(text);
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(text));
  } catch (error) {
    throw failure(`The backup of key "${entry.key}" is corrupt (it does not decompress)`, error);
  }
  if (digest !== entry.sha256 || typeof raw !== "string") {
    throw new BackupError(`The backup of key "${entry.key}" is corrupt (sha256 mismatch)`, { name: "DataError" });
  }
  return raw;
}

/** `{key: raw}` of a stored record, every entry decompressed and its sha256 checked. */
async function verifiedValues(record) {
  const pairs = [];
  for (const entry of record.entries) pairs.push([entry.key, await decodeEntry(entry)]);
  return Object.fromEntries(pairs);
}

function summary({ id, created_at, meta, entries }) {
  const keys = entries.map(({ key, bytes, compressed_bytes, sha256 }) => ({ key, bytes, compressed_bytes, sha256 }));
  return { id, created_at, meta, keys };
}

function newId(createdAt) {
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, "0"));
  return `${createdAt}-${suffix.join("")}`;
}

async function readRecord(id) {
  const record = await transact(BACKUPS, "readonly", (store) => settle(store.get(id)))
    .catch((error) => { throw failure(`Could not read backup ${id}`, error); });
  if (record === undefined) throw new BackupError(`There is no backup with id ${id}`, { name: "NotFoundError" });
  return record;
}

// ---- backups -------------------------------------------------------------

/** Store `{key: raw}` as one backup, read it back and check it, then prune; resolves to its summary. */
export async function saveBackup(values, meta = {}) {
  requireIndexedDB();
  requireCodecs();
  const pairs = values instanceof Map ? [...values] : Object.entries(values);
  const createdAt = new Date().toISOString();
  const record = { id: newId(createdAt), created_at: createdAt, meta: toJson(meta, "backup's meta"), entries: [] };
  for (const [key, raw] of pairs) record.entries.push(await encodeEntry(key, raw));

  await transact(BACKUPS, "readwrite", (store) => settle(store.add(record)))
    .catch((error) => { throw failure("Could not store the backup in IndexedDB", error); });
  try {
    const stored = await verifiedValues(await readRecord(record.id));
    const differs = pairs.find(([key, raw]) => !Object.hasOwn(stored, key) || stored[key] !== raw);
    if (differs || Object.keys(stored).length !== pairs.length) {
      throw new BackupError(`The backup read back differs from localStorage${differs ? ` at key "${differs[0]}"` : ""}`);
    }
  } catch (error) {
    await deleteBackup(record.id).catch(() => {}); // do not leave a backup that failed its check
    throw failure("The backup was written but did not read back intact", error);
  }
  // The backup is stored and checked; failing to prune old ones must not stop the migration.
  await pruneBackups().catch((error) => console.warn("lsmigrate: pruning old backups failed:", error));
  return summary(record);
}

/** Summaries of every backup (no data), newest first. */
export async function listBackups() {
  const records = await transact(BACKUPS, "readonly", (store) => settle(store.getAll()))
    .catch((error) => { throw failure("Could not list the backups", error); });
  return records.sort((a, b) => (a.id < b.id ? 1 : -1)).map(summary);
}

/** `{key: raw}` of backup `id`, every entry decompressed and its sha256 checked. */
export async function backupValues(id) {
  return verifiedValues(await readRecord(id));
}

/** Write the backup's raw values (all, or only `keys`) back into localStorage; resolves to the restored keys. */
export async function restoreBackup(id, keys = null) {
  const values = await backupValues(id);
  const chosen = keys === null ? Object.keys(values) : [...keys];
  const missing = chosen.filter((key) => !Object.hasOwn(values, key));
  if (missing.length) throw new BackupError(`Backup ${id} holds no key ${missing.map((k) => `"${k}"`).join(", ")}`);
  for (const key of chosen) {
    try {
      localStorage.setItem(key, values[key]);
    } catch (error) {
      throw failure(`Could not write key "${key}" back to localStorage`, error);
    }
    if (localStorage.getItem(key) !== values[key]) {
      throw new BackupError(`Key "${key}" reads back from localStorage differently after the restore`);
    }
  }
  return chosen;
}

/** Download backup `id` as lsmigrate-backup-<id>.json; resolves to the file's JSON text. */
export async function downloadBackup(id) {
  const record = await readRecord(id);
  const values = await verifiedValues(record);
  const entries = record.entries.map(({ key, sha256 }) => ({ key, sha256, value: values[key] }));
  const { created_at, meta } = record;
  const text = JSON.stringify({ format: DOWNLOAD_FORMAT, id, created_at, meta, entries }, null, 2);
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const link = Object.assign(document.createElement("a"), { href: url, download: `lsmigrate-backup-${id}.json` });
  (document.body || document.documentElement).append(link);
  link.click();
  link.remove();
  // Revoking at once can cancel the download in some browsers (FileSaver.js waits 40 s too).
  setTimeout(() => URL.revokeObjectURL(url), 40_000);
  return text;
}

/** Delete backups outside the `keep` newest AND older than `maxAgeDays`; never the newest. Resolves to the deleted ids. */
export async function pruneBackups({ keep = 5, maxAgeDays = 30 } = {}) {
  const cutoff = Date.now() - maxAgeDays * DAY_MS;
  const doomed = (await listBackups())
    .filter((backup, index) => index > 0 && index >= keep && Date.parse(backup.created_at) < cutoff)
    .map((backup) => backup.id);
  if (doomed.length) {
    await transact(BACKUPS, "readwrite", (store) => Promise.all(doomed.map((id) => settle(store.delete(id)))))
      .catch((error) => { throw failure("Could not delete old backups", error); });
  }
  return doomed;
}

/** Delete backup `id` (nothing happens if there is none). */
export async function deleteBackup(id) {
  await transact(BACKUPS, "readwrite", (store) => settle(store.delete(id)))
    .catch((error) => { throw failure(`Could not delete backup ${id}`, error); });
}

// ---- checkpoint ----------------------------------------------------------

/** The saved resume checkpoint, or null. */
export async function loadCheckpoint() {
  const value = await transact(CHECKPOINTS, "readonly", (store) => settle(store.get(CHECKPOINT_KEY)))
    .catch((error) => { throw failure("Could not read the migration checkpoint", error); });
  return value === undefined ? null : value;
}

/** Replace the resume checkpoint with `checkpoint` (stored as its JSON form). */
export async function saveCheckpoint(checkpoint) {
  const value = toJson(checkpoint, "checkpoint");
  await transact(CHECKPOINTS, "readwrite", (store) => settle(store.put(value, CHECKPOINT_KEY)))
    .catch((error) => { throw failure("Could not save the migration checkpoint", error); });
}

/** Forget the resume checkpoint. */
export async function clearCheckpoint() {
  await transact(CHECKPOINTS, "readwrite", (store) => settle(store.delete(CHECKPOINT_KEY)))
    .catch((error) => { throw failure("Could not clear the migration checkpoint", error); });
}
