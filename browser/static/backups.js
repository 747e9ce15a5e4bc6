/* lsmigrate backups: owns the IndexedDB database "lsmigrate" (version 1).
 *
 * Before any record leaves the browser, the raw value of every source
 * localStorage key is stored here, gzip-compressed with its sha256, and read
 * back and checked. The database also keeps the migration's resume checkpoint.
 *
 * Object store "backups" (keyPath "id"), one record per backup:
 *   { id:         "20250102T030405.678Z-<8 hex>": created_at in ISO 8601 basic
 *                 format plus a random suffix (sortable, safe in a file name)
 *     created_at: ISO 8601 string, e.g. "2025-01-02T03:04:05.678Z"
 *     meta:       the caller's small JSON object; the runner's {client_session_id, user_digest}: the
 *                 digest (never the id) of the user whose data it holds, whom alone it is restored for
 *     entries:    [{ key, bytes, compressed_bytes, sha256, gzip }] }
 * An entry's stored text is JSON.stringify(raw). That is lossless: it escapes
 * lone surrogates ("\ud800"), which UTF-8 (TextEncoder) would replace.
 *   bytes            UTF-8 byte length of the stored text
 *   sha256           lowercase hex sha256 of exactly those UTF-8 bytes
 *   gzip             Uint8Array: those bytes through CompressionStream("gzip")
 *   compressed_bytes gzip.byteLength
 * Object store "checkpoints": the resume checkpoint's JSON form, key "current";
 * the last finished run's outcome {at, report}, key "outcome".
 *
 * Backups expire MAX_AGE_DAYS after they were made (they hold secrets too):
 * pruneBackups() deletes the expired ones, and backupsExpireAt() says when the
 * next one does, so the loader can wait until then without opening the database.
 *
 * Every failure is a BackupError: `message` says in plain words what failed,
 * `name` keeps the DOM exception's name when there is one (QuotaExceededError).
 */

const DB_NAME = "lsmigrate";
const DB_VERSION = 1;
const BACKUPS = "backups";
const CHECKPOINTS = "checkpoints";
const CHECKPOINT_KEY = "current";
const OUTCOME_KEY = "outcome";
const DOWNLOAD_FORMAT = "lsmigrate-backup/1";
const DAY_MS = 24 * 60 * 60 * 1000;
/** How long a backup is kept: the panel says so. */
export const MAX_AGE_DAYS = 30;
const UNAVAILABLE = "IndexedDB is not available in this browser (private browsing or blocked site storage), " +
  "so localStorage cannot be backed up";

export class BackupError extends Error {
  constructor(message, { name = "BackupError", cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = name;
  }
}

/** A BackupError saying `what` failed and why, keeping a DOM exception's name. */
function failure(what, error) {
  if (error instanceof BackupError) return error;
  const name = error instanceof DOMException ? error.name : "BackupError";
  const quota = name === "QuotaExceededError";
  const why = quota ? "the browser's storage quota for this site is full" : error?.message || name;
  return new BackupError(`${what}: ${why}`, { name, cause: error });
}

/** Whether this browser exposes IndexedDB (some private modes and sandboxes do not). */
export function available() {
  try {
    return typeof indexedDB !== "undefined" && indexedDB !== null;
  } catch {
    return false; // some browsers throw on access when site storage is blocked
  }
}

function requireIndexedDB() {
  if (!available()) throw new BackupError(UNAVAILABLE);
}

let connection = null;

function openDatabase() {
  return new Promise((resolve, reject) => {
    requireIndexedDB();
    let blocked = false;
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(BACKUPS)) db.createObjectStore(BACKUPS, { keyPath: "id" });
      if (!db.objectStoreNames.contains(CHECKPOINTS)) db.createObjectStore(CHECKPOINTS);
    };
    request.onsuccess = () => {
      const db = request.result;
      if (blocked) return db.close(); // the caller already has its error
      // Another tab upgrades or deletes the database: step aside instead of blocking it.
      db.onversionchange = () => { db.close(); connection = null; };
      db.onclose = () => { connection = null; };
      resolve(db);
    };
    request.onerror = () => reject(request.error);
    request.onblocked = () => {
      blocked = true;
      const message = "Could not open the backup database: another tab of this site holds it open; close that tab";
      reject(new BackupError(message, { name: "BlockedError" }));
    };
  });
}

/** The shared connection: opened once, reopened after it closed or failed to open. */
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

/** Run `work(store)` (returning a request or a promise) in one transaction; resolves once it commits. */
async function transact(what, storeName, mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(storeName, mode);
    let result;
    tx.oncomplete = () => resolve(result);
    tx.onabort = () => reject(tx.error || new Error("the transaction was aborted"));
    const outcome = work(tx.objectStore(storeName));
    Promise.resolve(outcome instanceof IDBRequest ? settle(outcome) : outcome).then(
      (value) => { result = value; },
      (error) => {
        reject(error);
        try { tx.abort(); } catch { /* already finished */ }
      },
    );
  }).catch((error) => { throw failure(what, error); });
}

function requireCodecs() {
  const missing = typeof CompressionStream === "undefined" ? "CompressionStream (gzip)"
    : !globalThis.crypto?.subtle ? "crypto.subtle (the page is not a secure context)" : null;
  if (missing) throw new BackupError(`This browser lacks ${missing}, so localStorage cannot be backed up`);
}

async function pipe(bytes, transform) {
  const stream = new Blob([bytes]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function hex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(bytes) {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** The JSON form of `value`; Maps (what Pyodide makes of a dict by default) become objects. */
function toJson(value, what) {
  const text = JSON.stringify(value, (_, item) => (item instanceof Map ? Object.fromEntries(item) : item));
  if (text === undefined) throw new BackupError(`The ${what} is not JSON-able`);
  return JSON.parse(text);
}

/** [key, raw] pairs of a plain object or a Map; anything else (a PyProxy) would silently back up nothing. */
function entriesOf(values) {
  if (values instanceof Map) return [...values];
  const proto = values !== null && typeof values === "object" ? Object.getPrototypeOf(values) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new BackupError("saveBackup takes a plain object {key: rawString} or a Map " +
      "(from Python: to_js(values, dict_converter=Object.fromEntries))");
  }
  return Object.entries(values);
}

/** Let the page handle its events between two pieces of work on megabytes (no task runs long). */
const breathe = () => new Promise((resolve) => setTimeout(resolve, 0));

async function encodeEntry(key, raw) {
  if (typeof raw !== "string") throw new BackupError(`The value of key "${key}" is not a string`);
  const json = JSON.stringify(raw);
  await breathe();
  const text = new TextEncoder().encode(json);
  await breathe();
  const gzip = await pipe(text, new CompressionStream("gzip"));
  return { key, bytes: text.byteLength, compressed_bytes: gzip.byteLength, sha256: await sha256Hex(text), gzip };
}

async function decodeEntry({ key, sha256, gzip }) {
  let text;
  try {
    text = await pipe(gzip, new DecompressionStream("gzip"));
  } catch (error) {
    throw new BackupError(`The backup of key "${key}" is corrupt (it does not decompress)`,
      { name: "DataError", cause: error });
  }
  if ((await sha256Hex(text)) !== sha256) {
    throw new BackupError(`The backup of key "${key}" is corrupt (its sha256 does not match)`, { name: "DataError" });
  }
  const json = new TextDecoder().decode(text);
  await breathe();
  return JSON.parse(json);
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
  return `${createdAt.replace(/[-:]/g, "")}-${hex(crypto.getRandomValues(new Uint8Array(4)))}`;
}

const sortKey = (record) => `${record.created_at} ${record.id}`;

async function readRecord(id) {
  const record = await transact(`Could not read backup ${id}`, BACKUPS, "readonly", (store) => store.get(id));
  if (record === undefined) throw new BackupError(`There is no backup with id ${id}`, { name: "NotFoundError" });
  return record;
}

/** Store `{key: raw}` as one backup, read it back and check it, prune old ones; resolves to its summary. */
export async function saveBackup(values, meta = {}) {
  requireIndexedDB();
  requireCodecs();
  const pairs = entriesOf(values);
  const createdAt = new Date().toISOString();
  const record = { id: newId(createdAt), created_at: createdAt, meta: toJson(meta, "backup's meta"), entries: [] };
  for (const [key, raw] of pairs) record.entries.push(await encodeEntry(key, raw));
  const size = record.entries.reduce((total, entry) => total + entry.compressed_bytes, 0);

  await transact(`Could not store the backup (${size} bytes gzipped) in IndexedDB`, BACKUPS, "readwrite",
    (store) => store.add(record));
  try {
    await breathe();
    const stored = await verifiedValues(await readRecord(record.id));
    await breathe();
    const differs = pairs.find(([key, raw]) => stored[key] !== raw);
    if (differs) throw new BackupError(`The backup of key "${differs[0]}" reads back differently`);
  } catch (error) {
    await deleteBackup(record.id).catch(() => {}); // leave no backup that failed its check
    throw error;
  }
  // The backup is stored and checked: failing to prune old ones must not stop the migration.
  await pruneBackups().catch((error) => console.warn("lsmigrate: pruning old backups failed:", error));
  return summary(record);
}

/** Summaries of every backup (no data), newest first. */
export async function listBackups() {
  const records = await transact("Could not list the backups", BACKUPS, "readonly", (store) => store.getAll());
  return records.sort((a, b) => (sortKey(a) < sortKey(b) ? 1 : -1)).map(summary);
}

/** `{key: raw}` of backup `id`, every entry decompressed and its sha256 checked. */
export async function backupValues(id) {
  return verifiedValues(await readRecord(id));
}

/** A BackupError unless backup `record` belongs to the user of digest `owner` (when one is asked for). */
function requireOwner(record, owner) {
  if (owner === undefined || (owner !== null && record.meta && record.meta.user_digest === owner)) return;
  const whose = owner === null ? "whose it is could not be checked (is the server reachable?)"
    : record.meta && record.meta.user_digest ? "it belongs to another user of this browser"
    : "it was made before backups named their user, so it may be another user's";
  throw new BackupError(`Backup ${record.id} is not available to you: ${whose}`, { name: "NotAllowedError" });
}

/** Write the backup's raw values (all, or only `keys`) back into localStorage; resolves to the restored keys.
 * With `owner` (a user digest; null: unknown), only a backup of that user is restored. */
export async function restoreBackup(id, keys = null, { owner } = {}) {
  const record = await readRecord(id);
  requireOwner(record, owner);
  const values = await verifiedValues(record);
  const chosen = keys === null ? Object.keys(values) : [...keys];
  const missing = chosen.filter((key) => !Object.hasOwn(values, key));
  if (missing.length) throw new BackupError(`Backup ${id} holds no key ${missing.map((k) => `"${k}"`).join(", ")}`);
  return writeBack(values, chosen);
}

/** Write `values` (key -> text) back to localStorage, each read back and compared; resolves to the keys. */
export function writeBack(values, keys = Object.keys(values)) {
  for (const key of keys) {
    if (typeof values[key] !== "string") throw new BackupError(`Key "${key}" has no text to restore`);
    try {
      localStorage.setItem(key, values[key]);
    } catch (error) {
      throw failure(`Could not write key "${key}" back to localStorage`, error);
    }
    if (localStorage.getItem(key) !== values[key]) {
      throw new BackupError(`Key "${key}" reads back from localStorage differently after the restore`);
    }
  }
  return [...keys];
}

/** Download backup `id` as lsmigrate-backup-<id>.json; resolves to the file's JSON text.
 * With `owner` (a user digest; null: unknown), only a backup of that user is downloaded. */
export async function downloadBackup(id, { owner } = {}) {
  const record = await readRecord(id);
  requireOwner(record, owner);
  const values = await verifiedValues(record);
  const entries = record.entries.map(({ key, sha256 }) => ({ key, sha256, value: values[key] }));
  const { created_at, meta } = record;
  const text = JSON.stringify({ format: DOWNLOAD_FORMAT, id, created_at, meta, entries }, null, 2);
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const link = Object.assign(document.createElement("a"), { href: url, download: `lsmigrate-backup-${id}.json` });
  (document.body || document.documentElement).append(link);
  link.click();
  link.remove();
  // Revoking at once can cancel the download in some browsers; FileSaver.js waits 40 s too.
  setTimeout(() => URL.revokeObjectURL(url), 40_000);
  return text;
}

/** Delete every backup older than `maxAgeDays`, whoever's it is; resolves to their ids. */
export async function pruneBackups({ maxAgeDays = MAX_AGE_DAYS } = {}) {
  const cutoff = Date.now() - maxAgeDays * DAY_MS;
  const doomed = (await listBackups())
    .filter((backup) => Date.parse(backup.created_at) < cutoff)
    .map((backup) => backup.id);
  if (doomed.length) {
    await transact("Could not delete old backups", BACKUPS, "readwrite",
      (store) => Promise.all(doomed.map((id) => settle(store.delete(id)))));
  }
  return doomed;
}

/** When (ms since the epoch) the oldest backup expires, or null when there is none. */
export async function backupsExpireAt({ maxAgeDays = MAX_AGE_DAYS } = {}) {
  const backups = await listBackups();
  if (backups.length === 0) return null;
  return Math.min(...backups.map((backup) => Date.parse(backup.created_at))) + maxAgeDays * DAY_MS;
}

/** Delete backup `id` (nothing happens if there is none). */
export async function deleteBackup(id) {
  await transact(`Could not delete backup ${id}`, BACKUPS, "readwrite", (store) => store.delete(id));
}

/** The saved resume checkpoint, or null. */
export async function loadCheckpoint() {
  const value = await transact("Could not read the migration checkpoint", CHECKPOINTS, "readonly",
    (store) => store.get(CHECKPOINT_KEY));
  return value === undefined ? null : value;
}

/** Replace the resume checkpoint with `checkpoint` (stored as its JSON form). */
export async function saveCheckpoint(checkpoint) {
  const value = toJson(checkpoint, "checkpoint");
  await transact("Could not save the migration checkpoint", CHECKPOINTS, "readwrite",
    (store) => store.put(value, CHECKPOINT_KEY));
}

/** Forget the resume checkpoint. */
export async function clearCheckpoint() {
  await transact("Could not clear the migration checkpoint", CHECKPOINTS, "readwrite",
    (store) => store.delete(CHECKPOINT_KEY));
}

/** Record a finished run's outcome `{at, report}` (key "outcome"), for a tab that waited on the lock. */
export async function saveOutcome(outcome) {
  const value = toJson(outcome, "outcome");
  await transact("Could not save the migration's outcome", CHECKPOINTS, "readwrite",
    (store) => store.put(value, OUTCOME_KEY));
}

/** The last finished run's outcome `{at, report}`, or null. */
export async function loadOutcome() {
  const value = await transact("Could not read the migration's outcome", CHECKPOINTS, "readonly",
    (store) => store.get(OUTCOME_KEY));
  return value === undefined ? null : value;
}
