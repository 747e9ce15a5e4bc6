"""Applying one batch of one store, in one transaction (PUT .../batches/SEQ): body → map → plan → decide → write.

The server trusts nothing the client mapped: it re-checks every digest and
maps the raw records again with the shared schemas; `plan` looks up what the
batch's ids name and `decide` decides what becomes of each record. Writes
are set-based, a handful of statements whatever the batch's size: one binary
COPY of the new rows (`db.copy`), one update (executemany) of the rows it
overwrites, one insert each of quarantine and conflict rows, one COPY of the
ledger, and the batch's own row. All of it commits together or not at all: a dropped
connection leaves nothing of the batch behind (503, send it again).

A batch is idempotent: the same body under the same seq replays the stored
response, another body under that seq is 409 `batch_mismatch`. A dry run
does everything, the table writes included, inside a savepoint it then
rolls back; it keeps the ledger and the batch so `complete` can verify.
A collision with a concurrent writer (another user inserting the same UUID
at that instant: a unique constraint refusing the write) is retried,
deciding afresh; after three collisions in a row the answer is 409
`concurrent_write`. Any other integrity error is a server error, not a race.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import bindparam, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from lsmigrate.server.api.bodies import load_body
from lsmigrate.server.api.shedding import user_busy
from lsmigrate.server.db import db
from lsmigrate.server.db.copy import insert_rows
from lsmigrate.server.db.models import (
    LedgerEntry,
    MigrationBatch,
    MigrationConflict,
    MigrationSession,
    QuarantinedRecord,
)
from lsmigrate.server.errors import Conflict, PayloadTooLarge, Unprocessable
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.ingest.decide import Batch
from lsmigrate.server.ingest.plan import Plan, plan_batch
from lsmigrate.server.observability.metrics import count_batch
from lsmigrate.server.records.digests import row_digests
from lsmigrate.server.records.quarantine import may_hold_unstorable_text
from lsmigrate.server.sessions import lock_user
from lsmigrate.server.signals import send_records_changed
from lsmigrate.shared.canonical import manifest_digest
from lsmigrate.shared.mapping import MappedRecord
from lsmigrate.shared.protocol import MAX_INDEX, BatchRequest

_BATCH_REQUEST = BatchRequest()
ATTEMPTS = 3
_SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def _session_closed() -> Conflict:
    return Conflict("This migration session no longer accepts batches.", code="session_closed")


def _stored_response(owner: tuple[uuid.UUID, str], seq: int, fingerprint: str) -> dict[str, Any] | None:
    session_id, user_id = owner
    batch = db.session.scalars(
        select(MigrationBatch)
        .where(MigrationBatch.user_id == user_id, MigrationBatch.session_id == session_id, MigrationBatch.seq == seq)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if batch is None:
        return None
    if batch.fingerprint != fingerprint:
        raise Conflict(
            f"Batch {seq} was already received with a different body.",
            code="batch_mismatch",
            details={"seq": seq},
        )
    return batch.response


def _refuse_resent(owner: tuple[uuid.UUID, str], key: str, offset: int, count: int) -> None:
    session_id, user_id = owner
    overlap = db.session.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(
            LedgerEntry.user_id == user_id,
            LedgerEntry.session_id == session_id,
            LedgerEntry.key == key,
            LedgerEntry.index >= offset,
            LedgerEntry.index < offset + count,
        )
    )
    if overlap:
        raise Conflict(
            f"Records {offset}..{offset + count - 1} of {key!r} were already sent in another batch.",
            code="records_already_sent",
        )


def _close_conflicts(batch: Batch, plan: Plan) -> None:
    """Earlier open conflicts whose record a newer version superseded: closed, their record quarantined."""
    if not plan.closed_conflicts:
        return
    query = select(MigrationConflict).where(
        MigrationConflict.user_id == batch.user_id,
        MigrationConflict.session_id == batch.session_id,
        tuple_(MigrationConflict.key, MigrationConflict.index).in_(plan.closed_conflicts),
    )
    now = datetime.now(UTC)
    for conflict in db.session.scalars(query):
        conflict.status, conflict.resolution, conflict.resolved_at = "closed", "superseded", now
        plan.quarantine.append(
            {
                "session_id": conflict.session_id,
                "user_id": conflict.user_id,
                "key": conflict.key,
                "index": conflict.index,
                "raw": conflict.local,
                "reasons": [{"code": "superseded", "field": "", "message": "a newer version came in the session"}],
                "target_table": conflict.target_table,
                "target_id": conflict.target_id,
                "created_at": now,
            }
        )
    db.session.flush()


def _keep_written_digests(batch: Batch, plan: Plan) -> None:
    """Each write's ledger entry keeps the digest of the row as written: what rollback compares it with."""
    written = row_digests(
        batch.model, batch.user_id, [row["id"] for row in plan.inserts] + [row["b_id"] for row in plan.updates]
    )
    for entry in plan.ledger:
        if entry["written_at"] is not None:
            entry["row_digest"] = written[entry["target_id"]]


def _write(batch: Batch, plan: Plan) -> None:
    table = batch.model.__table__
    savepoint = db.session.begin_nested() if batch.dry_run else None
    insert_rows(table, plan.inserts)
    if plan.updates:
        mine = (table.c.id == bindparam("b_id")) & (table.c.user_id == bindparam("b_user"))
        db.session.execute(update(table).where(mine), plan.updates)
    if savepoint is not None:
        savepoint.rollback()  # every constraint was checked; nothing stays
    elif plan.inserts or plan.updates:
        _keep_written_digests(batch, plan)
    _close_conflicts(batch, plan)
    if plan.quarantine:
        db.session.execute(insert(QuarantinedRecord.__table__), plan.quarantine)
    if plan.conflicts:
        db.session.execute(insert(MigrationConflict.__table__), plan.conflicts)
    if plan.superseded:
        ledger = LedgerEntry.__table__
        earlier = (
            (ledger.c.user_id == batch.user_id)
            & (ledger.c.session_id == batch.session_id)
            & (ledger.c.key == bindparam("b_key"))
            & (ledger.c.index == bindparam("b_index"))
        )
        db.session.execute(update(ledger).where(earlier).values(outcome="superseded"), plan.superseded)
    insert_rows(LedgerEntry.__table__, plan.ledger)


def _apply(
    batch: Batch, fingerprint: str, offset: int, records: list[Any], mapped: list[MappedRecord], check_text: bool
) -> tuple[dict[str, Any], bool]:
    """One attempt in one transaction: (the response, whether the user's rows changed); Shed (429 user_busy)
    when another batch of the user holds their lock (a worker never waits on it: `api.shedding`)."""
    if not lock_user(batch.user_id, wait=False):
        db.session.rollback()
        raise user_busy()
    sessions = MigrationSession.__table__
    touched = db.session.execute(
        update(sessions)
        .where(sessions.c.user_id == batch.user_id, sessions.c.id == batch.session_id, sessions.c.status == "open")
        .values(last_active_at=datetime.now(UTC))
    )
    if touched.rowcount == 0:  # type: ignore[attr-defined]
        raise _session_closed()
    replay = _stored_response(batch.owner, batch.seq, fingerprint)  # a twin request may have won the lock
    if replay is not None:
        db.session.rollback()
        return replay, False
    _refuse_resent(batch.owner, batch.key, offset, len(records))

    plan = plan_batch(batch, records, mapped, check_text=check_text)
    counts = Counter(result["outcome"] for result in plan.results)
    response: dict[str, Any] = {"seq": batch.seq, "key": batch.key, "counts": dict(counts), "results": plan.results}
    if batch.dry_run:
        response["dry_run"] = True
    _write(batch, plan)
    db.session.add(
        MigrationBatch(
            session_id=batch.session_id,
            seq=batch.seq,
            user_id=batch.user_id,
            key=batch.key,
            fingerprint=fingerprint,
            response=response,
            created_at=datetime.now(UTC),
        )
    )
    db.session.commit()
    count_batch(batch.spec.name, counts, dry_run=batch.dry_run)
    return response, not batch.dry_run and bool(plan.inserts or plan.updates)


def _is_collision(error: IntegrityError) -> bool:
    """True when a unique constraint refused the write (someone else wrote that key first)."""
    if isinstance(error.orig, psycopg.errors.UniqueViolation):
        return True
    # SQLite's extended result code (Python 3.11+), not its message text.
    return isinstance(error.orig, sqlite3.IntegrityError) and error.orig.sqlite_errorname in _SQLITE_UNIQUE


def _check_digests(mapped: list[MappedRecord], digests: list[str] | None, records_digest: str | None) -> None:
    """422 `digest_mismatch` unless the records are the ones the page digested: per record (the indexes that
    differ, at most 100, in `details`), or for the batch (no indexes: the page sends per-record digests to
    learn them)."""
    if digests is None:
        if manifest_digest(record.digest for record in mapped) != records_digest:
            raise Unprocessable(
                "The records do not match the batch's records_digest; send per-record digests to learn which.",
                code="digest_mismatch",
                details={"indexes": None},
            )
        return
    wrong = [m.index for m, sent in zip(mapped, digests, strict=True) if m.digest != sent]
    if wrong:
        raise Unprocessable(
            "Some records do not match their digests.", code="digest_mismatch", details={"indexes": wrong[:100]}
        )


def put_batch(session: MigrationSession, seq: int, body: bytes) -> dict[str, Any]:
    """Apply batch `seq` of `session` (or replay its stored response) and return the response."""
    fingerprint = hashlib.sha256(body).hexdigest()
    replay = _stored_response((session.id, session.user_id), seq, fingerprint)
    if replay is not None:
        return replay
    payload = load_body(_BATCH_REQUEST, body)
    if session.status != "open":
        raise _session_closed()
    lsmigrate = current_lsmigrate()
    stores = lsmigrate.catalog.stores_for_key(payload["key"])
    if not stores:
        raise Unprocessable(f"{payload['key']!r} is not a store lsmigrate migrates.", code="unknown_store")
    if payload["store"] is None and len(stores) > 1:
        names = [spec.name for spec in stores]
        raise Unprocessable(
            f"{payload['key']!r} holds the stores {names}: say which one the batch is of.", code="store_required"
        )
    spec = next((spec for spec in stores if payload["store"] in (None, spec.name)), None)
    if spec is None:
        raise Unprocessable(
            f"{payload['key']!r} holds no store {payload['store']!r}.",
            code="unknown_store",
            details={"stores": [spec.name for spec in stores]},
        )
    records, digests, key = payload["records"], payload["digests"], payload["key"]
    limit = lsmigrate.settings["MAX_BATCH_RECORDS"]
    if len(records) > limit:
        raise PayloadTooLarge(f"A batch holds at most {limit} records.", code="too_many_records")
    if payload["offset"] + len(records) - 1 > MAX_INDEX:
        raise Unprocessable(
            f"A record's index in its key is at most {MAX_INDEX}.",
            code="invalid_request",
            details={"offset": [f"offset + records must stay within {MAX_INDEX + 1}"]},
        )
    if digests is not None and len(digests) != len(records):
        raise Unprocessable("There must be one digest per record.", code="digest_mismatch")
    mapped = spec.map(
        records, key=key, user_id=session.user_id, migrated_at=session.created_at, offset=payload["offset"]
    )
    _check_digests(mapped, digests, payload["records_digest"])
    batch = Batch(spec, lsmigrate.model_for(spec), session.id, session.user_id, session.dry_run, key, seq)
    check_text = may_hold_unstorable_text(body)
    for _ in range(ATTEMPTS):
        try:
            response, changed = _apply(batch, fingerprint, payload["offset"], records, mapped, check_text)
        except IntegrityError as error:
            # A concurrent request with the same seq, or another user's row with the same id, won the race.
            db.session.rollback()
            if not _is_collision(error):
                raise  # a row the plan built wrong (a NOT NULL, a CHECK): a server error, never retried as a race
            collision = error
            replay = _stored_response(batch.owner, seq, fingerprint)
            if replay is not None:
                return replay
            continue
        if changed:
            send_records_changed(batch.user_id, write_through=False)  # complete writes the snapshot through
        return response
    raise Conflict(
        "The batch kept colliding with concurrent writes; send it again.", code="concurrent_write"
    ) from collision
