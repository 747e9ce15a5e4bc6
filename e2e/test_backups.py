"""browser/static/backups.js in Chromium: IndexedDB backups of localStorage and the resume checkpoint."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e

# Values travel to and from the page as UTF-16 code units, so a lone surrogate
# survives the trip through Playwright exactly.
SPECIAL = {
    "lone-surrogate": "a\ud800b",
    "emoji": "🌙 👨‍👩‍👧 done",
    "nul": "before\x00after",
    "line-separator": "x\u2028y\u2029z",
    "json-ish": '{"q": "\\"quoted\\"", "tab": "\t", "del": "\x7f", "é": "日本語"}',
}

PRELUDE = """
const m = await import('/lsmigrate/static/backups.js');
const units = (s) => Array.from({ length: s.length }, (_, i) => s.charCodeAt(i));
const fromUnits = (u) => String.fromCharCode(...u);
const decode = (o) => Object.fromEntries(Object.entries(o).map(([k, u]) => [k, fromUnits(u)]));
const encode = (o) => Object.fromEntries(Object.entries(o).map(([k, s]) => [k, units(s)]));
const caught = (promise) => promise.then(() => null, (e) => ({ name: e.name, message: e.message }));
const bigJson = (n) => JSON.stringify({ tasks: Array.from({ length: n }, (_, i) => (
  { id: `task-${i}`, title: `Task ${i} « ü »`, done: i % 3 === 0, notes: 'lorem ipsum dolor '.repeat(4) })) });
const randomText = (n) => Array.from({ length: Math.ceil(n / 65536) }, () => Array.from(
  crypto.getRandomValues(new Uint8Array(32768)), (b) => b.toString(16).padStart(2, '0')).join('')).join('').slice(0, n);
// Direct access to lsmigrate's database, for what the module must not offer: tampering, old records.
const idb = (mode, work) => new Promise((resolve, reject) => {
  const open = indexedDB.open('lsmigrate', 1);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    const tx = db.transaction('backups', mode);
    let result;
    tx.oncomplete = () => { db.close(); resolve(result); };
    tx.onabort = () => { db.close(); reject(tx.error); };
    work(tx.objectStore('backups'), (value) => { result = value; });
  };
});
const getRecord = (id) => idb('readonly', (store, done) => { store.get(id).onsuccess = (e) => done(e.target.result); });
const putRecords = (records) => idb('readwrite', (store) => records.forEach((r) => store.put(r)));
"""


def run(page: Page, body: str, args: Any = None) -> Any:
    """Run `body` (an async function body) in the page with backups.js imported as `m`."""
    return page.evaluate(f"async (args) => {{ {PRELUDE}\n{body} }}", args)


def units(text: str) -> list[int]:
    """UTF-16 code units of `text`, lone surrogates included."""
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def encoded(values: dict[str, str]) -> dict[str, list[int]]:
    return {key: units(value) for key, value in values.items()}


def stored_text(raw: str) -> bytes:
    """The documented stored bytes: UTF-8 of JSON.stringify(raw), which escapes lone surrogates as \\udxxx."""
    text = json.dumps(raw, ensure_ascii=False)
    return re.sub("[\ud800-\udfff]", lambda match: f"\\u{ord(match[0]):04x}", text).encode()


def sha256(raw: str) -> str:
    return hashlib.sha256(stored_text(raw)).hexdigest()


@pytest.fixture
def origin(page: Page, live_server: LiveServer) -> Page:
    """The page, on the server's origin (a fresh browser context: an empty IndexedDB)."""
    page.goto(f"{live_server.url}/lsmigrate/static/demo.css")
    return page


def test_restore_writes_back_every_value_byte_for_byte(origin: Page) -> None:
    result = run(
        origin,
        """
        const original = { ...decode(args.special), big: bigJson(24000) };
        for (const [key, value] of Object.entries(original)) localStorage.setItem(key, value);
        const values = Object.fromEntries(Object.keys(original).map((k) => [k, localStorage.getItem(k)]));
        const backup = await m.saveBackup(values, { session: 's-1', user: 'u-1' });

        localStorage.setItem('emoji', 'changed');
        localStorage.setItem('big', '{}');
        localStorage.removeItem('lone-surrogate');
        localStorage.removeItem('nul');
        const restored = await m.restoreBackup(backup.id);

        const after = Object.fromEntries(Object.keys(original).map((k) => [k, localStorage.getItem(k)]));
        return {
          restored: restored.sort(),
          identical: Object.keys(original).every((k) => after[k] === original[k]),
          bigLength: after.big.length,
          special: encode(Object.fromEntries(Object.keys(args.special).map((k) => [k, after[k]]))),
        };
        """,
        {"special": encoded(SPECIAL)},
    )
    assert result["restored"] == sorted([*SPECIAL, "big"])
    assert result["identical"] is True
    assert result["bigLength"] > 3_000_000
    assert result["special"] == encoded(SPECIAL)
    assert result["special"]["lone-surrogate"] == [0x61, 0xD800, 0x62]


def test_restore_of_chosen_keys_leaves_the_others(origin: Page) -> None:
    result = run(
        origin,
        """
        const { id } = await m.saveBackup({ a: 'one', b: 'two' });
        localStorage.setItem('a', 'A');
        localStorage.setItem('b', 'B');
        const restored = await m.restoreBackup(id, ['a']);
        const unknown = await caught(m.restoreBackup(id, ['a', 'nope']));
        return { id, restored, a: localStorage.getItem('a'), b: localStorage.getItem('b'), unknown };
        """,
    )
    assert result["restored"] == ["a"]
    assert (result["a"], result["b"]) == ("one", "B")
    assert result["unknown"] == {"name": "BackupError", "message": f'Backup {result["id"]} holds no key "nope"'}


def test_list_is_newest_first_with_sizes_and_sha256(origin: Page) -> None:
    first = {**SPECIAL, "empty": ""}
    second = {"task-store": json.dumps({"state": {"tasks": []}, "version": 0})}
    result = run(
        origin,
        """
        const a = await m.saveBackup(decode(args.first), { session: 's-1' });
        const b = await m.saveBackup(decode(args.second), { session: 's-2', user: 'u' });
        return { a, b, list: await m.listBackups(), values: encode(await m.backupValues(a.id)) };
        """,
        {"first": encoded(first), "second": encoded(second)},
    )
    a, b = result["a"], result["b"]
    assert [backup["id"] for backup in result["list"]] == [b["id"], a["id"]]
    assert result["list"] == [b, a]
    assert a["created_at"] <= b["created_at"] and a["id"] < b["id"]
    assert a["id"].startswith(a["created_at"].replace("-", "").replace(":", "") + "-")
    assert (a["meta"], b["meta"]) == ({"session": "s-1"}, {"session": "s-2", "user": "u"})
    assert [entry["key"] for entry in a["keys"]] == list(first)
    for entry in a["keys"]:
        raw = first[entry["key"]]
        assert entry["sha256"] == sha256(raw)
        assert entry["bytes"] == len(stored_text(raw))
        assert entry["compressed_bytes"] > 0
    lone = next(entry for entry in a["keys"] if entry["key"] == "lone-surrogate")
    assert lone["sha256"] == hashlib.sha256(b'"a\\ud800b"').hexdigest()
    assert b["keys"][0]["sha256"] == sha256(second["task-store"])
    assert result["values"] == encoded(first)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("{ a: 'ok', b: 1 }", 'The value of key "b" is not a string'),
        ("new (class Store {})()", "saveBackup takes a plain object {key: rawString} or a Map"),
        ("'a=b'", "saveBackup takes a plain object {key: rawString} or a Map"),
    ],
)
def test_save_backup_rejects_what_is_not_key_to_string(origin: Page, values: str, message: str) -> None:
    result = run(origin, f"return {{ error: await caught(m.saveBackup({values})), list: await m.listBackups() }};")
    assert result["error"]["name"] == "BackupError"
    assert result["error"]["message"].startswith(message)
    assert result["list"] == []


def test_save_backup_takes_a_map(origin: Page) -> None:
    result = run(origin, "const { id } = await m.saveBackup(new Map([['a', 'x']])); return m.backupValues(id);")
    assert result == {"a": "x"}


def test_backup_values_of_an_unknown_id_rejects(origin: Page) -> None:
    error = run(origin, "return caught(m.backupValues('2020-01-01T00:00:00.000Z-00000000'));")
    assert error == {"name": "NotFoundError", "message": "There is no backup with id 2020-01-01T00:00:00.000Z-00000000"}


TAMPERINGS = {
    "other content": "new Uint8Array(await new Response(new Blob(['\"tampered\"']).stream()"
    ".pipeThrough(new CompressionStream('gzip'))).arrayBuffer())",
    "flipped byte": "(() => { const g = entry.gzip.slice(); g[g.length >> 1] ^= 0x40; return g; })()",
    "not gzip": "new Uint8Array([1, 2, 3, 4])",
}


@pytest.mark.parametrize("tampering", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_entry_is_caught_and_named(origin: Page, tampering: str) -> None:
    result = run(
        origin,
        f"""
        const {{ id }} = await m.saveBackup({{ first: 'untouched', second: bigJson(50) }});
        const record = await getRecord(id);
        const entry = record.entries.find((e) => e.key === 'second');
        entry.gzip = {tampering};
        await putRecords([record]);
        localStorage.setItem('second', 'current');
        return {{
          values: await caught(m.backupValues(id)),
          restore: await caught(m.restoreBackup(id)),
          download: await caught(m.downloadBackup(id)),
          localStorage: [localStorage.getItem('first'), localStorage.getItem('second')],
        }};
        """,
    )
    assert result["values"] is not None
    assert result["values"]["name"] == "DataError"
    assert result["values"]["message"].startswith('The backup of key "second" is corrupt (it')
    assert result["restore"] == result["values"] == result["download"]
    assert result["localStorage"] == [None, "current"], "a corrupt backup must not restore anything"


def test_a_full_quota_rejects_the_backup_and_leaves_nothing(origin: Page, live_server: LiveServer) -> None:
    # Chromium applies an override only to storage the origin has not opened yet, so it comes first. The
    # quota holds one small backup (the database's files take ~72 KB), not 1 MB of random text (~500 KB gzipped).
    cdp = origin.context.new_cdp_session(origin)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": live_server.url, "quotaSize": 256 * 1024})
    before = run(origin, "await m.saveBackup({ small: 'kept' }); return m.listBackups();")
    assert len(before) == 1

    result = run(
        origin,
        """
        const error = await caught(m.saveBackup({ big: randomText(1_000_000) }, { session: 's-quota' }));
        return { error, list: await m.listBackups() };
        """,
    )
    assert result["error"]["name"] == "QuotaExceededError"
    assert "quota" in result["error"]["message"]
    assert result["error"]["message"].startswith("Could not store the backup")
    assert result["list"] == before

    cdp.send("Storage.overrideQuotaForOrigin", {"origin": live_server.url})
    after = run(origin, "await m.saveBackup({ big: randomText(1_000_000) }); return m.listBackups();")
    assert len(after) == 2, "the same backup fits once the quota is back"


def test_without_indexeddb_saving_rejects_clearly(page: Page, live_server: LiveServer) -> None:
    page.add_init_script("Object.defineProperty(window, 'indexedDB', { value: undefined })")
    page.goto(f"{live_server.url}/lsmigrate/static/demo.css")
    result = run(
        page,
        """
        return {
          available: m.available(),
          save: await caught(m.saveBackup({ a: 'b' })),
          list: await caught(m.listBackups()),
          checkpoint: await caught(m.loadCheckpoint()),
        };
        """,
    )
    assert result["available"] is False
    message = "IndexedDB is not available in this browser (private browsing or blocked site storage), "
    message += "so localStorage cannot be backed up"
    assert result["save"] == {"name": "BackupError", "message": message}
    assert result["list"] == result["checkpoint"] == result["save"]


def seed_aged_backups(page: Page, ages_in_days: list[int]) -> list[str]:
    """Backups created `ages_in_days` ago (newest first, as real records written straight into IndexedDB)."""
    ids: list[str] = run(
        page,
        """
        const template = await getRecord((await m.saveBackup({ k: 'v' })).id);
        await m.deleteBackup(template.id);
        const records = args.map((days, i) => {
          const created_at = new Date(Date.now() - days * 86_400_000).toISOString();
          return { ...template, id: `${created_at.replace(/[-:]/g, '')}-0000000${i}`, created_at };
        });
        await putRecords(records);
        return records.map((r) => r.id);
        """,
        ages_in_days,
    )
    return ids


@pytest.mark.parametrize(
    ("ages_in_days", "options", "pruned"),
    [
        # Backups expire after 30 days, however many there are: the old ones go.
        ([0, 1, 2, 3, 4, 40, 41, 42], {}, [5, 6, 7]),
        ([0, 40, 41, 42], {}, [1, 2, 3]),
        # Many, but all from the last 30 days: kept.
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 29], {}, []),
        # Everything old: the newest goes too (it holds secrets like the others).
        ([45, 50, 60], {}, [0, 1, 2]),
        ([0, 1, 3, 4], {"maxAgeDays": 2}, [2, 3]),
    ],
)
def test_prune_deletes_every_backup_past_its_age(
    origin: Page, ages_in_days: list[int], options: dict[str, int], pruned: list[int]
) -> None:
    ids = seed_aged_backups(origin, ages_in_days)
    result = run(
        origin,
        "return { deleted: await m.pruneBackups(args), left: (await m.listBackups()).map((b) => b.id) };",
        options,
    )
    assert sorted(result["deleted"]) == sorted(ids[i] for i in pruned)
    assert result["left"] == [backup for i, backup in enumerate(ids) if i not in pruned]


def test_backups_expire_at_says_when_the_oldest_expires(origin: Page) -> None:
    assert run(origin, "return m.backupsExpireAt();") is None
    seed_aged_backups(origin, [1, 10])
    result = run(
        origin,
        "const created = (await m.listBackups()).map((b) => Date.parse(b.created_at));"
        "return { at: await m.backupsExpireAt(), oldest: Math.min(...created), days: m.MAX_AGE_DAYS };",
    )
    assert result["days"] == 30
    assert result["at"] == result["oldest"] + 30 * 86_400_000


def test_save_backup_prunes_with_the_defaults(origin: Page) -> None:
    ids = seed_aged_backups(origin, [1, 2, 3, 4, 40, 41])
    result = run(
        origin,
        "const { id } = await m.saveBackup({ k: 'new' });"
        "return { id, left: (await m.listBackups()).map((b) => b.id) };",
    )
    assert result["left"] == [result["id"], *ids[:4]]


def test_download_is_a_json_file_with_the_exact_values(origin: Page) -> None:
    values = {**SPECIAL, "task-store": json.dumps({"state": {"tasks": [{"id": "task-1"}]}, "version": 0})}
    with origin.expect_download() as info:
        result = run(
            origin,
            """
            const backup = await m.saveBackup(decode(args), { session: 's-9', user: 'u-9' });
            return { backup, text: await m.downloadBackup(backup.id) };
            """,
            encoded(values),
        )
    download = info.value
    backup = result["backup"]
    assert download.suggested_filename == f"lsmigrate-backup-{backup['id']}.json"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text == result["text"]
    assert json.loads(text) == {
        "format": "lsmigrate-backup/1",
        "id": backup["id"],
        "created_at": backup["created_at"],
        "meta": {"session": "s-9", "user": "u-9"},
        "entries": [{"key": key, "sha256": sha256(value), "value": value} for key, value in values.items()],
    }


def test_checkpoint_round_trip_survives_a_reload(origin: Page) -> None:
    checkpoint = {"session": "s-1", "acknowledged": {"task-store": [0, 1, 2]}, "phase": "upload"}
    first = run(
        origin,
        """
        const empty = await m.loadCheckpoint();
        await m.saveCheckpoint({ session: 'old' });
        await m.saveCheckpoint(args);
        return { empty, loaded: await m.loadCheckpoint() };
        """,
        checkpoint,
    )
    assert first == {"empty": None, "loaded": checkpoint}

    origin.reload()
    assert run(origin, "return m.loadCheckpoint();") == checkpoint
    assert run(origin, "await m.clearCheckpoint(); return m.loadCheckpoint();") is None


def test_another_tab_deleting_the_database_is_not_blocked(origin: Page) -> None:
    result = run(
        origin,
        """
        await m.saveBackup({ a: 'b' });
        await m.saveCheckpoint({ session: 's-1' });
        let blocked = false;
        const outcome = await new Promise((resolve) => {
          const request = indexedDB.deleteDatabase('lsmigrate');
          request.onblocked = () => { blocked = true; };
          request.onsuccess = () => resolve('deleted');
          request.onerror = () => resolve(request.error.name);
        });
        return { outcome, blocked, list: await m.listBackups(), checkpoint: await m.loadCheckpoint() };
        """,
    )
    assert result == {"outcome": "deleted", "blocked": False, "list": [], "checkpoint": None}


def test_a_backup_is_restored_or_downloaded_for_its_own_user_only(origin: Page) -> None:
    result = run(
        origin,
        """
        const [alice, bob] = ['a'.repeat(64), 'b'.repeat(64)];
        const mine = await m.saveBackup({ k: 'mine' }, { user_digest: alice });
        const theirs = await m.saveBackup({ k: 'theirs' }, { user_digest: bob });
        const older = await m.saveBackup({ k: 'older' }, { client_session_id: 'made before backups named a user' });
        return {
          theirs: await caught(m.restoreBackup(theirs.id, null, { owner: alice })),
          older: await caught(m.restoreBackup(older.id, null, { owner: alice })),
          unknown: await caught(m.restoreBackup(mine.id, null, { owner: null })),
          download: await caught(m.downloadBackup(theirs.id, { owner: alice })),
          untouched: localStorage.getItem('k'),
          mine: await m.restoreBackup(mine.id, null, { owner: alice }),
          restored: localStorage.getItem('k'),
        };
        """,
    )
    assert result["untouched"] is None
    assert {name: result[name]["name"] for name in ("theirs", "older", "unknown", "download")} == dict.fromkeys(
        ("theirs", "older", "unknown", "download"), "NotAllowedError"
    )
    assert "belongs to another user of this browser" in result["theirs"]["message"]
    assert "may be another user's" in result["older"]["message"]
    assert "could not be checked" in result["unknown"]["message"]
    assert (result["mine"], result["restored"]) == (["k"], "mine")


def loader_page(page: Page, server: LiveServer, requests: list[str] | None = None) -> None:
    """Load a page of the origin that runs the loader (the demo, nothing to migrate), until the network is idle."""
    if requests is not None:
        page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{server.url}/demo?user=e2e-backups-{uuid.uuid4().hex[:8]}")
    page.wait_for_load_state("networkidle")


def marker(page: Page) -> Any:
    return json.loads(page.evaluate("() => localStorage.getItem('lsmigrate:done')") or "null")


def backup_ids(page: Page) -> list[str]:
    ids: list[str] = run(page, "return (await m.listBackups()).map((b) => b.id);")
    return ids


def test_a_page_load_prunes_expired_backups_once_the_marker_says_one_expired(
    origin: Page, live_server: LiveServer
) -> None:
    ids = seed_aged_backups(origin, [1, 40])
    origin.evaluate("() => localStorage.setItem('lsmigrate:done', JSON.stringify({ backups_expire_at: Date.now() }))")
    loader_page(origin, live_server)
    origin.wait_for_function("() => JSON.parse(localStorage.getItem('lsmigrate:done')).backups_expire_at > Date.now()")
    assert backup_ids(origin) == ids[:1]
    # The next expiry is the remaining backup's: made a day ago, kept 30 days.
    [created] = run(origin, "return (await m.listBackups()).map((b) => Date.parse(b.created_at));")
    assert marker(origin)["backups_expire_at"] == created + 30 * 86_400_000


def test_a_page_load_opens_no_database_while_the_marker_says_nothing_expired(
    origin: Page, live_server: LiveServer
) -> None:
    ids = seed_aged_backups(origin, [40])
    tomorrow = "() => localStorage.setItem('lsmigrate:done', JSON.stringify({ backups_expire_at: Date.now() + 864e5 }))"
    origin.evaluate(tomorrow)
    requests: list[str] = []
    loader_page(origin, live_server, requests)
    assert not [url for url in requests if "backups.js" in url]
    assert backup_ids(origin) == ids  # the marker is believed: nothing was opened, nothing pruned


def test_backups_of_a_browser_whose_local_storage_was_cleared_still_expire(
    origin: Page, live_server: LiveServer
) -> None:
    seed_aged_backups(origin, [40, 41])
    origin.evaluate("() => localStorage.clear()")  # the app signs its user out: the marker is gone too
    loader_page(origin, live_server)
    origin.wait_for_function("() => localStorage.getItem('lsmigrate:done') !== null")
    assert marker(origin) == {"backups_expire_at": None}
    assert backup_ids(origin) == []


def test_a_browser_that_never_migrated_gets_no_database(page: Page, live_server: LiveServer) -> None:
    requests: list[str] = []
    loader_page(page, live_server, requests)
    assert not [url for url in requests if "backups.js" in url]
    assert page.evaluate("async () => (await indexedDB.databases()).map((d) => d.name)") == []
    assert marker(page) is None
