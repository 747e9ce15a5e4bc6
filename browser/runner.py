"""One migration run in the page: check → extract → validate and map → back up → upload → verify → clean up.

The runner knows the protocol and the promise, not the browser: localStorage,
the IndexedDB backups and checkpoint, the network (`send`), time and progress
events come in a `Host`, so the same code runs under Pyodide and in CPython
tests.

A round migrates a set of keys in one server session:

- the raw values are read, extracted and mapped (digests; the server maps
  again), in slices with a pause between them so the page stays responsive;
- every raw value is backed up (IndexedDB, gzip, read back and checked) and
  a checkpoint saved (client session id, backup id, acknowledged batches)
  before the first upload; a backup that fails ends the run before anything
  is sent;
- each key is read whole (`lsmigrate.shared.keys.split_key`): its stores'
  records, and its remainder (what no store claims);
- batches go up in a fixed order (referenced stores first, keys sorted, the
  stores of a key in catalog order, `batch_size` records each), each sent
  until answered (see `retries`) and checkpointed once acknowledged; then each
  key's remainder;
- `complete` verifies the whole key; only the keys it lists, and only if their
  value still equals the backed-up one, are cleaned up: deleted, or stripped
  of their migrated records (every other byte left as it was).

A run that finds a checkpoint of its user (the digest /config names; another
user's, on a shared browser, is dropped and never uploaded) resumes it: same
client session id (the server answers with the batches it acknowledged, which
are skipped), the values read back from the backup rather than from
localStorage, so every batch is the same as before. A key the app rewrote during a round is kept and migrated
again in another round, and so is a key no round has read yet (at most
`max_rounds`; what is still waiting then is listed in `pending_keys`). A dry run backs up,
checkpoints and deletes nothing. (The marker that tells the loader this
origin has finished is the loader's to write.)
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from marshmallow import ValidationError

from lsmigrate.browser.progress import Emit, Progress
from lsmigrate.browser.retries import NetworkError, Pacing, Reply, RetryPolicy, Send, send_with_retries
from lsmigrate.shared.canonical import manifest_digest
from lsmigrate.shared.envelopes import SourceError
from lsmigrate.shared.keys import DELETE, STRIP, SplitKey, split_key, strip_edits, strip_text
from lsmigrate.shared.protocol import OUTCOMES, BatchRequest
from lsmigrate.shared.stores import OWN_KEY_PREFIX, StoreCatalog, StoreSpec

OUTCOME_COUNTS = OUTCOMES
#: The protocol's rule for a key's name, as the server applies it to every batch.
_KEY_NAME = BatchRequest().fields["key"]
#: Records mapped between two pauses: about 20 ms in Pyodide for compact tasks (each pause costs a few ms), so the
#: backup, written meanwhile, gets a turn of the event loop every 20 ms.
MAP_SLICE = 500


class Storage(Protocol):
    """What the runner needs of localStorage: its keys and values as last read (`refresh` reads them again; on
    the page's own thread they are always current), and compare-and-set (`swap`), done where localStorage is."""

    def keys(self) -> list[str]: ...
    def get(self, key: str) -> str | None: ...
    async def refresh(self) -> None: ...
    async def swap(self, key: str, expected: str, value: str | None) -> str: ...


#: What `swap` found: the key held the expected value (and was written or deleted), was gone, or held another.
HELD, GONE, REWRITTEN = "held", "gone", "rewritten"


class DirectStorage:
    """A Storage over a synchronous localStorage (the page's own, on its thread; a dict in tests): always current,
    so `refresh` has nothing to do and `swap` compares and writes in one step, nothing running in between."""

    def keys(self) -> list[str]:
        raise NotImplementedError

    def get(self, key: str) -> str | None:
        raise NotImplementedError

    def set(self, key: str, value: str) -> None:
        raise NotImplementedError

    def remove(self, key: str) -> None:
        raise NotImplementedError

    async def refresh(self) -> None:
        """Nothing to read again: `get` reads localStorage itself."""

    async def swap(self, key: str, expected: str, value: str | None) -> str:
        """Write `value` (None: delete the key) only while the key holds `expected`; what was found."""
        current = self.get(key)
        if current is None:
            return GONE
        if current != expected:
            return REWRITTEN
        if value is None:
            self.remove(key)
        else:
            self.set(key, value)
        return HELD


class Backups(Protocol):
    """The IndexedDB side: backups of raw values, and the resume checkpoint."""

    async def save(self, values: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]: ...
    async def values(self, backup_id: str) -> dict[str, str]: ...
    async def load_checkpoint(self) -> dict[str, Any] | None: ...
    async def save_checkpoint(self, checkpoint: dict[str, Any]) -> None: ...
    async def clear_checkpoint(self) -> None: ...


class PagePacing(Pacing, Protocol):
    """Pacing, plus a monotonic clock and a pause that lets the page handle its events."""

    def now(self) -> float: ...
    async def breathe(self) -> None: ...


@dataclass
class Host:
    """Everything the runner touches outside Python."""

    storage: Storage
    send: Send
    emit: Emit
    backups: Backups
    pacing: PagePacing


@dataclass(frozen=True, kw_only=True)
class Options:
    """How a run goes: the stores, batch size, dry run, rounds for rewritten keys, retries."""

    catalog: StoreCatalog
    batch_size: int = 500
    dry_run: bool = False
    max_rounds: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: What the server's /config agreed on (set by the run itself): sent when a session opens.
    stores_version: str | None = None
    #: Whose run this is, as /config names the signed-in user (a digest, never the id; set by the run itself):
    #: kept with the checkpoint and each backup, and a checkpoint of another digest is never resumed.
    user_digest: str | None = None
    #: Keys the loader found holding nothing new (their record containers empty, their documents the ones this
    #: origin migrated): left out of the run, so the server's copy of each stays the one that held its records.
    #: A key the app changes during the run is reported pending.
    settled_keys: frozenset[str] = frozenset()


class MigrationFailed(Exception):
    """A step failed for good: the server refused it, or the backup could not be made. Nothing is deleted."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


@dataclass
class _Source:
    """One store's records in one key; `offset` is where they start among the key's records."""

    key: str
    spec: StoreSpec
    records: list[Any]
    offset: int = 0
    digests: list[str] = field(default_factory=list)


@dataclass
class _Round:
    """The keys one session migrates, their raw values as backed up, and the checkpoint that resumes it."""

    values: dict[str, str]
    sources: list[_Source]
    checkpoint: dict[str, Any]
    resumed: bool
    splits: dict[str, SplitKey] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """What `complete` is asked: per key, its records' count and digests, its stores, its remainder."""
        digests: dict[str, list[str]] = {key: [] for key in self.splits}
        for source in sorted(self.sources, key=lambda source: (source.key, source.offset)):
            digests[source.key].extend(source.digests)
        return {key: split.manifest(digests[key]) for key, split in self.splits.items()}


def _key_report(found: int) -> dict[str, Any]:
    report: dict[str, Any] = {"found": found, "warnings": 0, "cleaned_up": False}
    report.update(dict.fromkeys(OUTCOME_COUNTS, 0))
    return report


def _new_report(dry_run: bool) -> dict[str, Any]:
    return {
        "session_id": None,
        "state": "running",
        "dry_run": dry_run,
        "keys": {},
        "errors": [],
        "unknown_keys": [],
        "rounds": 0,
        "backup_id": None,
        "pending_keys": [],
    }


async def run_migration(host: Host, options: Options) -> dict[str, Any]:
    """Migrate every store found in localStorage (resuming a checkpointed run); returns the report of design §9.

    A step that fails for good ends the run with state "failed" and the error in
    the report; nothing is deleted then, and a checkpoint stays for the next run.
    A server with other stores than the page's is refused before anything is backed up, sent or deleted.
    """
    report = _new_report(options.dry_run)
    progress = Progress(host.emit, host.pacing.now)
    spec_for_key = options.catalog.spec_for_key
    await host.storage.refresh()
    settled = {key: host.storage.get(key) for key in options.settled_keys}
    try:
        checkpoint = None if options.dry_run else await host.backups.load_checkpoint()
        if checkpoint is not None:  # whose is it? Asked before its backup is even read
            options = await _configured(host, options, progress)
            checkpoint = await _own_checkpoint(host, options, progress, checkpoint)
        keys: list[str] | None = None  # the first round takes every migratable key (or the checkpoint's)
        attempted: set[str] = set(settled)
        while report["rounds"] < options.max_rounds:
            found = await _plan_round(host, options, report, progress, checkpoint, keys)
            if found is None:
                break
            if options.stores_version is None:  # before anything is mapped, backed up or sent
                options = await _configured(host, options, progress)
            report["rounds"] += 1
            attempted.update(found.values)
            rewritten = await _run_round(host, options, report, progress, found)
            if options.dry_run:
                break
            # Next: what the app rewrote meanwhile, and keys no round has read yet (a resumed round
            # takes only its checkpoint's keys).
            await host.storage.refresh()
            fresh = [key for key in host.storage.keys() if spec_for_key(key) is not None and key not in attempted]
            checkpoint, keys = None, sorted({*rewritten, *fresh})
            if not keys:
                break
        await host.storage.refresh()
        changed = {key for key, value in settled.items() if host.storage.get(key) != value}
        report["pending_keys"] = [] if options.dry_run else sorted({*(keys or []), *changed})
        report["state"] = "done"
    except MigrationFailed as error:
        report["state"] = "failed"
        report["error"] = {"code": error.code, "message": error.message, "details": error.details}
    progress.start("done", 0)
    return report


async def finish_migration(host: Host, options: Options, report: dict[str, Any]) -> dict[str, Any]:
    """After the open conflicts of a finished run were resolved: verify its session again and clean up the keys
    `complete` now lists, each only while it holds the backed-up value. A MigrationFailed leaves everything."""
    if not report.get("session_id") or not report.get("manifest") or report.get("dry_run"):
        return report
    progress = Progress(host.emit, host.pacing.now)
    try:
        server = _Server(host, options, progress)
        verdict = await server.call(
            "POST", f"/sessions/{report['session_id']}/complete", {"manifest": report["manifest"]}
        )
        values = await host.backups.values(report["backup_id"])
        await clean_up(host.storage, options.catalog, values, verdict, report)
    except MigrationFailed as error:
        report["finish_error"] = {"code": error.code, "message": error.message, "details": error.details}
    return report


async def _configured(host: Host, options: Options, progress: Progress) -> Options:
    """`options` with what the server's /config says: the stores version page and server share, and the digest
    of the signed-in user. Refused when the server's stores differ (they would map differently)."""
    config = await _Server(host, options, progress).call("GET", "/config", None)
    digest = config.get("user_digest") if isinstance(config, dict) else None
    return replace(
        options,
        stores_version=_check_stores(options, config),
        user_digest=digest if isinstance(digest, str) else None,
    )


async def _own_checkpoint(
    host: Host, options: Options, progress: Progress, checkpoint: dict[str, Any]
) -> dict[str, Any] | None:
    """The checkpoint if it is the signed-in user's; None (and forgotten) when it is another user's.

    On a shared browser the checkpoint (and the backup it resumes from) may be another user's: resuming it
    would upload their records into this user's account. It is dropped, and its session left alone (it is not
    this user's to withdraw; the server would refuse anyway). A checkpoint saved before checkpoints named their
    user is this user's when the server says its session is.
    """
    if "user_digest" in checkpoint or options.user_digest is None:
        mine = checkpoint.get("user_digest") == options.user_digest
    else:
        mine = await _session_is_ours(host, options, progress, checkpoint)
    if mine:
        return checkpoint
    host.emit(
        "lsmigrate:warning",
        {
            "code": "foreign_checkpoint",
            "message": "An unfinished migration that is not this user's was left as it was; this one starts afresh "
            "from what this browser holds.",
        },
    )
    await host.backups.clear_checkpoint()
    return None


async def _session_is_ours(host: Host, options: Options, progress: Progress, checkpoint: dict[str, Any]) -> bool:
    """Whether the server knows the checkpoint's session as the signed-in user's."""
    session_id = checkpoint.get("session_id")
    if not session_id:
        return False  # nothing was sent yet: nothing on the server says whose it is
    try:
        await _Server(host, options, progress).call("GET", f"/sessions/{session_id}", None)
    except MigrationFailed as error:
        if error.code in ("unknown_session", "foreign_session"):
            return False
        raise
    return True


def _check_stores(options: Options, config: Any) -> str:
    """The stores version page and server share; refused when the server's stores differ."""
    served = config.get("stores", []) if isinstance(config, dict) else []
    # The server's JSON as it came: version() refuses unknown names and policies (ValueError).
    policies: dict[Any, Any] = {
        store.get("name"): store.get("conflict_policy") for store in served if isinstance(store, dict)
    }
    try:
        version = options.catalog.version(policies)
    except ValueError:
        version = None  # the server has stores the page does not know
    served_version = config.get("stores_version") if isinstance(config, dict) else None
    if version is None or version != served_version:
        raise MigrationFailed(
            "stores_version_mismatch",
            "This page was built for other stores than the server's, so nothing was sent or deleted: "
            "reload the page to get the current ones.",
            {"server": served_version, "page": version},
        )
    return version


async def _plan_round(
    host: Host,
    options: Options,
    report: dict[str, Any],
    progress: Progress,
    checkpoint: dict[str, Any] | None,
    keys: list[str] | None,
) -> _Round | None:
    """Read (or, resuming, read back) the round's raw values and extract their records; None: nothing to do."""
    spec_for_key = options.catalog.spec_for_key
    progress.start("check", 0)
    if checkpoint is not None:
        try:
            values = await host.backups.values(checkpoint["backup_id"])
        except Exception as error:  # noqa: BLE001 - a lost or damaged backup: start afresh, nothing was deleted
            host.emit("lsmigrate:warning", {"code": "checkpoint_unusable", "message": str(error)})
            await _withdraw(host, options, progress, checkpoint)
            await host.backups.clear_checkpoint()
            checkpoint = None
    if checkpoint is None:
        values = {}
        if keys is not None:  # a later round: what the app wrote since the last one was read
            await host.storage.refresh()
        for key in sorted(host.storage.keys()):
            if spec_for_key(key) is None:
                if not key.startswith(OWN_KEY_PREFIX) and key not in report["unknown_keys"]:
                    report["unknown_keys"].append(key)  # reported, never read or touched
                continue
            raw = host.storage.get(key)
            if raw is not None and (keys is None or key in keys) and key not in options.settled_keys:
                values[key] = raw
    await host.pacing.breathe()  # reading megabytes out of localStorage and parsing them: two tasks, not one
    progress.start("extract", len(values))
    sources = []
    splits: dict[str, SplitKey] = {}
    for key, raw in values.items():
        stores = options.catalog.stores_for_key(key)
        if not stores:  # a backed-up key this version no longer migrates
            progress.advance(1)
            continue
        try:
            _refuse_unsendable_name(key)
            split = split_key(key, raw, stores)
        except SourceError as error:
            report["errors"].append(error.as_dict())
            report["keys"][key] = {"found": None, "error": str(error), "cleaned_up": False}
            continue
        finally:
            progress.advance(1)
        splits[key] = split
        offset = 0
        for spec in stores:
            records = split.records[spec.name]
            sources.append(_Source(key, spec, records, offset))
            offset += len(records)
        report["keys"][key] = _key_report(offset)
        if len(stores) > 1:
            report["keys"][key]["stores"] = {name: len(records) for name, records in split.records.items()}
        if split.warnings:
            report["keys"][key]["source_warnings"] = split.warnings
        await host.pacing.breathe()
    if not splits:
        return None
    depth = options.catalog.upload_order()
    sources.sort(key=lambda source: depth[source.spec.name])  # referenced stores first; keys in order otherwise
    resumed = checkpoint is not None
    if checkpoint is None:
        checkpoint = {
            "client_session_id": str(uuid.uuid4()),
            "backup_id": None,
            "batch_size": options.batch_size,
            "keys": sorted(splits),
            "session_id": None,
            "acknowledged": [],
        }
    return _Round(values, sources, checkpoint, resumed, splits)


def _refuse_unsendable_name(key: str) -> None:
    """SourceError for a key whose name the protocol refuses (NUL, a lone surrogate, too long): no column holds
    it, so its batches would be refused on every run. It is reported and kept; the other keys go on."""
    try:
        _KEY_NAME.deserialize(key)
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, list) else [str(error.messages)]
        found = f"a name it refuses ({'; '.join(map(str, messages))})"
        raise SourceError(key, "a key name the server can store", found, code="unstorable_key") from error


async def _withdraw(host: Host, options: Options, progress: Progress, checkpoint: dict[str, Any]) -> None:
    """Roll back the server session of a checkpoint that cannot be resumed, if it is still open.

    Its batches came from a backup that is gone, so they cannot be sent again as they were; and while
    it is open the server refuses the user a new session. Rolling it back (its rows deleted, the rows
    it overwrote restored) lets a fresh round start from what localStorage holds, which nothing has
    deleted. A session already verified is left as it is: its work is done and proven.
    """
    session_id = checkpoint.get("session_id")
    if not session_id:
        return
    server = _Server(host, options, progress)
    try:
        session = await server.call("GET", f"/sessions/{session_id}", None)
    except MigrationFailed as error:
        if error.code in ("unknown_session", "foreign_session"):
            return  # not there any more, or another user's (someone else signed in): nothing of ours to withdraw
        raise
    if session["status"] == "open":
        await server.call("POST", f"/sessions/{session_id}/rollback", None)


async def _map(host: Host, progress: Progress, sources: list[_Source], report: dict[str, Any]) -> None:
    """Validate and map every record (the digests the server checks), a slice at a time."""
    progress.start("validate", sum(len(source.records) for source in sources))
    migrated_at = datetime.now(UTC)
    for source in sources:
        warnings = 0
        for start in range(0, len(source.records), MAP_SLICE):
            # Digests and warnings do not depend on the user; the server maps again with the real one.
            mapped = source.spec.map(
                source.records[start : start + MAP_SLICE], key=source.key, user_id="", migrated_at=migrated_at
            )
            source.digests.extend(record.digest for record in mapped)
            warnings += sum(len(record.warnings) for record in mapped)
            progress.advance(len(mapped))
            await host.pacing.breathe()
        report["keys"][source.key]["warnings"] += warnings


async def _back_up(host: Host, plan: _Round, report: dict[str, Any]) -> None:
    """Store and check the raw values, then the checkpoint: both before anything is uploaded; both name the
    user they belong to (the checkpoint does already)."""
    meta = {"client_session_id": plan.checkpoint["client_session_id"], "user_digest": plan.checkpoint["user_digest"]}
    try:
        backup = await host.backups.save(plan.values, meta)
        plan.checkpoint["backup_id"] = backup["id"]
        await host.backups.save_checkpoint(plan.checkpoint)
    except Exception as error:  # noqa: BLE001 - IndexedDB's errors are many and all mean the same here
        raise MigrationFailed(
            "backup_failed",
            f"The local backup could not be written, so nothing was uploaded or deleted: {error}",
        ) from error
    report["backup_id"] = backup["id"]


async def _run_round(
    host: Host, options: Options, report: dict[str, Any], progress: Progress, plan: _Round
) -> list[str]:
    """Map, back up, upload, verify and clean up one round; returns the keys the app rewrote meanwhile."""
    plan.checkpoint["user_digest"] = options.user_digest  # a checkpoint saved before they named their user too
    # The backup (the host's: IndexedDB, compression) is written while the records are validated; it is done,
    # and checked, before anything is uploaded.
    backing_up = None if options.dry_run or plan.resumed else asyncio.ensure_future(_back_up(host, plan, report))
    try:
        await _map(host, progress, plan.sources, report)
    except BaseException:
        if backing_up is not None:
            backing_up.cancel()
        raise
    if backing_up is not None:
        progress.start("backup", 1)
        await backing_up
        progress.advance(1)
    elif options.dry_run:
        progress.start("backup", 0)
    else:
        report["backup_id"] = plan.checkpoint["backup_id"]
        progress.start("backup", 1, 1)

    server = _Server(host, options, progress)
    session = await server.open(plan, options.dry_run)
    report["session_id"] = session["session_id"]
    if session["status"] != "verified":
        await _upload(host, server, plan, progress, session, options)
        for key, split in plan.splits.items():  # idempotent: a resumed round sends them again
            body = {"key": key, "remainder": split.remainder}
            await server.call("PUT", f"/sessions/{session['session_id']}/remainders", body, plan=plan)

    manifest = plan.manifest()
    report["manifest"] = manifest  # what `complete` is asked again once open conflicts are resolved
    total = sum(len(source.records) for source in plan.sources)
    progress.start("verify", total)
    verdict = await server.call("POST", f"/sessions/{session['session_id']}/complete", {"manifest": manifest})
    progress.advance(total)
    progress.start("cleanup", len(plan.splits))
    _count(verdict, report)
    rewritten = [] if options.dry_run else await clean_up(host.storage, options.catalog, plan.values, verdict, report)
    progress.advance(len(plan.splits))
    if not options.dry_run:
        await host.backups.clear_checkpoint()
    return rewritten


def _count(verdict: dict[str, Any], report: dict[str, Any]) -> None:
    """The outcome counts `complete` answered, and why it keeps keys, into the report's keys."""
    for key, counts in verdict.get("counts", {}).items():
        if key in report["keys"]:
            report["keys"][key].update({outcome: counts.get(outcome, 0) for outcome in OUTCOME_COUNTS})
    for key, why in verdict.get("kept_keys", {}).items():
        if key in report["keys"]:
            report["keys"][key]["kept"] = why


async def clean_up(
    storage: Storage, catalog: StoreCatalog, values: dict[str, str], verdict: dict[str, Any], report: dict[str, Any]
) -> list[str]:
    """Clean up the keys `complete` lists, each only while it still holds the backed-up value (compare and set):
    deleted, or stripped of its migrated records with every other byte as it was; the rest reported kept.
    Returns the keys the app rewrote meanwhile (what they hold now has not been migrated)."""
    _count(verdict, report)
    rewritten = []
    await storage.refresh()
    for key in verdict["deletable_keys"]:
        entry, raw = report["keys"].get(key), values.get(key)
        if entry is None or raw is None or entry.get("cleaned_up"):
            continue
        stores = catalog.stores_for_key(key)
        edits: list[Any] | None = None  # None: delete the key
        unstrippable: SourceError | None = None
        if verdict.get("cleanup", {}).get(key, DELETE) == STRIP:
            try:
                edits = strip_edits(split_key(key, raw, stores), stores)
            except SourceError as error:
                unstrippable = error
        if unstrippable is not None or edits == []:  # nothing is written: the key as last read tells
            current = storage.get(key)
            found = GONE if current is None else HELD if current == raw else REWRITTEN
        else:
            found = await storage.swap(key, raw, None if edits is None else strip_text(raw, stores[0].envelope, edits))
        if found == HELD and unstrippable is not None:
            entry.pop("kept", None)
            entry["kept"] = {"reason": "not_strippable", "message": str(unstrippable)}
        elif found == GONE:
            entry["gone"] = True  # the app removed it meanwhile; nothing of ours to remove
        elif found == REWRITTEN:
            # The app wrote the key after we read it: what it holds now has not been migrated. Keep it.
            entry["rewritten"] = True
            rewritten.append(key)
        elif edits == []:
            entry.pop("kept", None)
            entry["kept"] = {"reason": "documents_stay"}
        else:
            entry.pop("kept", None)
            entry["cleaned_up"], entry["cleanup"] = True, "deleted" if edits is None else "stripped"
    return rewritten


async def _upload(
    host: Host, server: _Server, plan: _Round, progress: Progress, session: dict[str, Any], options: Options
) -> None:
    """Send every batch the server has not acknowledged, in order, checkpointing each.

    One batch is in flight at a time (the server decides a batch against the ones before it), but the
    page's share of the work on an answer (events, the checkpoint, progress) is done while the server
    works on the next batch, which is sent first.
    """
    acknowledged = set(session.get("acknowledged_batches", []))
    batch_size = int(plan.checkpoint["batch_size"])
    batches = [(source, offset) for source in plan.sources for offset in range(0, len(source.records), batch_size)]
    todo = [(seq, source, offset) for seq, (source, offset) in enumerate(batches) if seq not in acknowledged]
    total = sum(len(source.records) for source in plan.sources)
    skipped = total - sum(len(source.records[offset : offset + batch_size]) for _, source, offset in todo)
    progress.start("upload", total, skipped)

    def send(seq: int, source: _Source, offset: int) -> asyncio.Task[Any]:
        path = f"/sessions/{session['session_id']}/batches/{seq}"
        return asyncio.ensure_future(_put_batch(server, path, plan, source, offset, batch_size))

    in_flight = send(*todo[0]) if todo else None
    try:
        for position, (seq, source, offset) in enumerate(todo):
            assert in_flight is not None
            answer = await in_flight
            in_flight = send(*todo[position + 1]) if position + 1 < len(todo) else None
            await asyncio.sleep(0)  # let the next request go out before this answer is dealt with
            await _acknowledged(host, plan, session["session_id"], options.dry_run, seq, source.key, answer)
            progress.advance(len(source.records[offset : offset + batch_size]))
            await host.pacing.breathe()
    finally:
        if in_flight is not None and not in_flight.done():
            in_flight.cancel()  # the run is failing; a batch the server took anyway is in its list on resume


async def _put_batch(server: _Server, path: str, plan: _Round, source: _Source, offset: int, size: int) -> Any:
    """PUT one batch with one digest for its records (a 64-hex digest per record would be a third of the
    compressed body); when the server finds they differ, again with one per record, which the server answers
    with the indexes that differ."""
    digests = source.digests[offset : offset + size]
    body = {
        "key": source.key,
        "store": source.spec.name,
        "offset": source.offset + offset,
        "records": source.records[offset : offset + size],
        "records_digest": manifest_digest(digests),
    }
    try:
        return await server.call("PUT", path, body, plan=plan)
    except MigrationFailed as error:
        located = isinstance(error.details, dict) and error.details.get("indexes") is not None
        if error.code != "digest_mismatch" or located:
            raise
    del body["records_digest"]
    body["digests"] = digests
    return await server.call("PUT", path, body, plan=plan)


async def _acknowledged(
    host: Host, plan: _Round, session_id: str, dry_run: bool, seq: int, key: str, answer: dict[str, Any]
) -> None:
    """What the page does with a batch's answer: an event per conflict, the checkpoint."""
    for result in answer.get("results", []):
        if result.get("outcome") == "conflict":
            detail = {"session_id": session_id, "key": key, "index": result["index"]}
            host.emit(
                "lsmigrate:conflict",
                detail | {"conflict_id": result.get("conflict_id"), "target_id": result.get("target_id")},
            )
    if not dry_run:
        plan.checkpoint["acknowledged"].append(seq)
        await host.backups.save_checkpoint(plan.checkpoint)


class _Server:
    """The protocol's calls, each sent until answered; a session the server closed is reopened once per call."""

    def __init__(self, host: Host, options: Options, progress: Progress) -> None:
        self.host = host
        self.options = options
        self.progress = progress

    async def _send(self, method: str, path: str, body: Any) -> Reply:
        try:
            return await send_with_retries(
                self.host.send, self.host.pacing, self.options.retry, method, path, body, self.progress.waiting
            )
        except NetworkError as error:
            raise MigrationFailed("network_error", f"The server could not be reached: {error}") from error

    async def call(self, method: str, path: str, body: Any, *, plan: _Round | None = None) -> Any:
        """The answer's body; MigrationFailed with the server's error when it refuses."""
        reply = await self._send(method, path, body)
        if reply.status == 409 and reply.error_code == "session_closed" and plan is not None:
            # Idle too long, another client took the user's session over: take it back and go on.
            await self.open(plan, self.options.dry_run)
            reply = await self._send(method, path, body)
        if 200 <= reply.status < 300:
            return reply.body
        error = reply.body.get("error", {}) if isinstance(reply.body, dict) else {}
        raise MigrationFailed(
            reply.error_code, error.get("message", f"{method} {path} answered {reply.status}"), error.get("details")
        )

    async def open(self, plan: _Round, dry_run: bool) -> dict[str, Any]:
        """Open (or resume) the round's session; a session rolled back meanwhile is replaced by a new one."""
        checkpoint = plan.checkpoint
        body = {
            "client_session_id": checkpoint["client_session_id"],
            "dry_run": dry_run,
        }
        if self.options.stores_version is not None:
            body["stores_version"] = self.options.stores_version
        session: dict[str, Any] = await self.call("POST", "/sessions", body)
        if session["status"] == "rolled_back":
            checkpoint["client_session_id"], checkpoint["acknowledged"] = str(uuid.uuid4()), []
            body["client_session_id"] = checkpoint["client_session_id"]
            session = await self.call("POST", "/sessions", body)
        checkpoint["session_id"] = session["session_id"]
        if not dry_run:
            await self.host.backups.save_checkpoint(checkpoint)
        return session
