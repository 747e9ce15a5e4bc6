"""Whole keys on the server: their remainders, their values rebuilt, and given back (design §11).

- `put_remainder` (PUT /sessions/{sid}/remainders): what no store claims in a key, one document per key
  and session; the same document again is answered alike, another one is 409 `remainder_mismatch`.
- `rebuild_value` rebuilds a key's tree from the session's ledger: each record from its row (inserted,
  updated, unchanged), the quarantine (quarantined, superseded, kept_server) or its open conflict, put
  back into the remainder (`lsmigrate.shared.keys.rebuild_key`). `complete` verifies it against the
  page's digest of the key's value before any key may be cleaned up.
- `list_keys` / `show_key` (GET /keys, GET /keys/{key}): the latest verified value of each key the user
  migrated, as the string localStorage held (canonical JSON; the same string where the app wrote it so).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lsmigrate.server.api.bodies import load_body
from lsmigrate.server.db import db
from lsmigrate.server.db.models import KeyRemainder, LedgerEntry, MigrationConflict, MigrationSession, QuarantinedRecord
from lsmigrate.server.errors import Conflict, NotFound, Unprocessable
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.records.quarantine import decrypt_secrets, stored_raw
from lsmigrate.server.records.rows import fetch_images, source_record, stored_secrets
from lsmigrate.server.sessions import durable
from lsmigrate.shared.canonical import digest
from lsmigrate.shared.keys import original_tree, rebuild_key
from lsmigrate.shared.protocol import RemainderRequest
from lsmigrate.shared.shapes import SHAPES
from lsmigrate.shared.stores import StoreSpec

_REMAINDER_REQUEST = RemainderRequest()
#: Outcomes whose record is a row of the store's table.
_IN_A_ROW = frozenset({"inserted", "updated", "unchanged"})


def _stores_of(key: str) -> tuple[StoreSpec, ...]:
    stores = current_lsmigrate().catalog.stores_for_key(key)
    if not stores:
        raise Unprocessable(f"{key!r} is not a key lsmigrate migrates.", code="unknown_store")
    return stores


def _check_document(key: str, document: dict[str, Any], stores: tuple[StoreSpec, ...]) -> None:
    """A remainder of the key's stores: a tree, and one part per store (its place and shape, or absent)."""
    problems = []
    if "tree" not in document:
        problems.append("no 'tree'")
    unknown = sorted(set(document) - {"tree", "parts", "original"})
    if unknown:
        problems.append(f"unknown entries {unknown}")
    parts = document.get("parts")
    names = [spec.name for spec in stores]
    if not isinstance(parts, dict) or sorted(parts) != sorted(names):
        problems.append(f"'parts' must name the key's stores {names}")
    else:
        for spec in stores:
            part = parts[spec.name]
            if not isinstance(part, dict):
                problems.append(f"part {spec.name!r} is not an object")
            elif part.get("absent") is True:
                continue
            elif part.get("shape") != spec.shape or part.get("shape") not in SHAPES:
                problems.append(f"part {spec.name!r} must have shape {spec.shape!r}")
            elif not isinstance(part.get("at"), list) or not all(
                isinstance(step, str) or (isinstance(step, int) and not isinstance(step, bool) and step >= 0)
                for step in part["at"]
            ):
                problems.append(f"part {spec.name!r} must say where it is ('at': names and indexes)")
    if problems:
        raise Unprocessable(
            f"The remainder of {key!r} is not one lsmigrate reads.",
            code="invalid_remainder",
            details={"problems": problems},
        )


def put_remainder(session: MigrationSession, body: bytes) -> dict[str, Any]:
    """Keep what no store claims in one key for `session`; idempotent."""
    payload = load_body(_REMAINDER_REQUEST, body)
    key, document = payload["key"], payload["remainder"]
    stores = _stores_of(key)
    _check_document(key, document, stores)
    fingerprint = digest(document)
    answer = {"key": key, "digest": fingerprint}
    existing = remainder_of(session, key)
    if existing is None:
        if session.status != "open":
            raise Conflict("This migration session no longer accepts remainders.", code="session_closed")
        durable()
        db.session.add(
            KeyRemainder(
                session_id=session.id,
                key=key,
                user_id=session.user_id,
                document=_sealed(document),
                digest=fingerprint,
                created_at=datetime.now(UTC),
            )
        )
        try:
            db.session.commit()
            return answer
        except IntegrityError:
            db.session.rollback()  # a twin request won: compare with what it stored
            existing = remainder_of(session, key)
            if existing is None:
                raise
    if existing.digest != fingerprint:
        raise Conflict(
            f"The remainder of {key!r} was already received with a different value.",
            code="remainder_mismatch",
            details={"key": key},
        )
    return answer


def _sealed(document: dict[str, Any]) -> dict[str, str]:
    """A remainder as it is stored: encrypted whole. What no store claims is the app's to know (an unsent
    draft, a token in a slice kept whole), so none of it is kept in clear; its ASCII JSON text also holds
    what no column can (NUL, a lone surrogate)."""
    return {"$encrypted_json": current_lsmigrate().box.encrypt(json.dumps(document, ensure_ascii=True))}


def document_of(remainder: KeyRemainder) -> dict[str, Any]:
    """A stored remainder, decrypted."""
    box = current_lsmigrate().box.reading("migration_remainders", remainder.session_id, remainder.key)
    document: dict[str, Any] = json.loads(box.decrypt(remainder.document["$encrypted_json"]))
    return document


def remainder_of(session: MigrationSession, key: str) -> KeyRemainder | None:
    """The remainder a session holds for a key, if any."""
    query = select(KeyRemainder).filter_by(user_id=session.user_id, session_id=session.id, key=key)
    return db.session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def key_records(session: MigrationSession, key: str) -> dict[str, list[Any]]:
    """Each store's records of a key as the session's ledger accounts for them, in key order, rebuilt from
    rows, the quarantine and open conflicts; LookupError naming what is missing."""
    lsmigrate = current_lsmigrate()
    box = lsmigrate.box
    entries = db.session.execute(
        select(LedgerEntry.index, LedgerEntry.store, LedgerEntry.outcome, LedgerEntry.target_id)
        .where(LedgerEntry.user_id == session.user_id, LedgerEntry.session_id == session.id, LedgerEntry.key == key)
        .order_by(LedgerEntry.index)
    ).all()
    specs: dict[str | None, StoreSpec] = {}
    for _, store, _, _ in entries:
        if store not in specs:
            spec = lsmigrate.spec_of(store, key)
            if spec is None:
                raise LookupError(f"store {store!r} of key {key!r} is no store of the catalog any more")
            specs[store] = spec
    wanted: dict[str | None, list[uuid.UUID]] = defaultdict(list)
    for _, store, outcome, target in entries:
        if outcome in _IN_A_ROW and target is not None:
            wanted[store].append(target)
    images: dict[uuid.UUID, tuple[StoreSpec, dict[str, Any]]] = {}
    for store, ids in wanted.items():
        spec = specs[store]
        for target, picture in fetch_images(lsmigrate.model_for(spec), session.user_id, ids).items():
            images[target] = (spec, picture)
    kept: dict[int, tuple[Any, list[Any]]] = {}
    for quarantined in db.session.scalars(
        select(QuarantinedRecord)
        .where(
            QuarantinedRecord.user_id == session.user_id,
            QuarantinedRecord.session_id == session.id,
            QuarantinedRecord.key == key,
        )
        .order_by(QuarantinedRecord.id)
    ):
        kept[quarantined.index] = (quarantined.raw, quarantined.reasons)
    waiting = {
        conflict.index: conflict.local
        for conflict in db.session.scalars(
            select(MigrationConflict).where(
                MigrationConflict.user_id == session.user_id,
                MigrationConflict.session_id == session.id,
                MigrationConflict.key == key,
                MigrationConflict.status == "open",
            )
        )
    }
    records: dict[str, list[Any]] = defaultdict(list)
    for index, store, outcome, target in entries:
        spec = specs[store]
        if outcome in _IN_A_ROW:
            if target not in images:
                raise LookupError(f"record {index} of {key!r}: its row {target} is gone")
            _, picture = images[target]
            row_box = box.reading(lsmigrate.model_for(spec).__tablename__, target)
            record = source_record(spec, picture, stored_secrets(spec, picture, row_box))
        elif outcome == "conflict":
            if index not in waiting:
                raise LookupError(f"record {index} of {key!r}: its open conflict is gone")
            record = decrypt_secrets(spec, waiting[index], box.reading("migration_conflicts", session.id, key, index))
        else:
            if index not in kept:
                raise LookupError(f"record {index} of {key!r}: its quarantined copy is gone")
            raw, reasons = kept[index]
            record = decrypt_secrets(spec, stored_raw(raw, reasons), box.reading("quarantine", session.id, key, index))
        records[spec.name].append(record)
    return dict(records)


def _latest(user_id: str) -> dict[str, tuple[KeyRemainder, MigrationSession]]:
    """Per key, the remainder of the user's latest verified (not dry-run) session that holds it."""
    query = (
        select(KeyRemainder, MigrationSession)
        .join(MigrationSession, MigrationSession.id == KeyRemainder.session_id)
        .where(
            KeyRemainder.user_id == user_id,
            MigrationSession.user_id == user_id,
            MigrationSession.status == "verified",
            MigrationSession.dry_run.is_(False),
            KeyRemainder.value_digest.is_not(None),
        )
        .order_by(KeyRemainder.key, MigrationSession.completed_at.desc())
    )
    latest: dict[str, tuple[KeyRemainder, MigrationSession]] = {}
    for remainder, session in db.session.execute(query):
        latest.setdefault(remainder.key, (remainder, session))
    return latest


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def list_keys(user_id: str) -> dict[str, Any]:
    """The keys the server holds for the user: the latest verified value of each, with its session."""
    keys = [
        {
            "key": key,
            "session_id": str(session.id),
            "verified_at": _moment(session.completed_at),
            "value_digest": remainder.value_digest,
        }
        for key, (remainder, session) in sorted(_latest(user_id).items())
    ]
    return {"keys": keys}


def show_key(user_id: str, key: str) -> dict[str, Any]:
    """The key's latest verified value, rebuilt: {"key", "value": the text localStorage held, ...}."""
    found = _latest(user_id).get(key)
    if found is None:
        raise NotFound(f"The server holds no verified value of {key!r} for this user.", code="unknown_key")
    remainder, session = found
    stores = current_lsmigrate().catalog.stores_for_key(key)
    if not stores:
        raise NotFound(f"{key!r} is no key of this server's stores any more.", code="unknown_key")
    document = document_of(remainder)
    try:
        records = key_records(session, key)
        tree = rebuild_key(records, document)
    except (LookupError, TypeError, ValueError) as error:  # KeyError and IndexError are LookupErrors
        # A row gone, or the key's stores changed since (another store, shape or place).
        raise Conflict(
            f"The value of {key!r} cannot be rebuilt any more: {type(error).__name__}: {error}.",
            code="key_unrebuildable",
        ) from error
    return {
        "key": key,
        "value": stores[0].envelope.write(original_tree(tree, document)),
        "session_id": str(session.id),
        "verified_at": _moment(session.completed_at),
        # False when the app changed a row since: the value then holds the rows as they are now.
        "as_verified": _as_verified(session, key, records),
    }


def _as_verified(session: MigrationSession, key: str, records: dict[str, list[Any]]) -> bool:
    """True when every rebuilt record is the one the session read (no row changed since)."""
    ledger = db.session.scalars(
        select(LedgerEntry.digest)
        .where(LedgerEntry.user_id == session.user_id, LedgerEntry.session_id == session.id, LedgerEntry.key == key)
        .order_by(LedgerEntry.index)
    ).all()
    return [digest(record) for run in records.values() for record in run] == list(ledger)
