"""Applying one batch of one store, in one transaction.

The server trusts nothing the client mapped: it re-checks every digest and
maps the raw records again with the shared schemas. Writes are set-based:
one lookup of the rows the batch touches, one multi-row insert per table,
one ledger insert. A batch is idempotent: the same body under the same seq
replays the stored response, another body under that seq is a conflict.
Rows are built the same way for every store: the table's model comes from
`record_model(spec.table)`, and each secret column of the spec is stored
as `<name>_encrypted` beside the `<name>_hint` the mapping made.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import UniqueConstraint, func, insert, select
from sqlalchemy.exc import IntegrityError

from lsmigrate.server.crypto import SecretBox, secret_box
from lsmigrate.server.errors import Conflict, PayloadTooLarge, Unprocessable
from lsmigrate.server.extensions import db
from lsmigrate.server.models import (
    LedgerEntry,
    MigratedRecord,
    MigrationBatch,
    MigrationSession,
    QuarantinedRecord,
    record_model,
)
from lsmigrate.server.payloads import load_body
from lsmigrate.server.user_records import records_changed
from lsmigrate.shared.catalog import spec_for_key
from lsmigrate.shared.ids import relocated_id
from lsmigrate.shared.mapping import MappedRecord
from lsmigrate.shared.protocol import BatchRequest
from lsmigrate.shared.stores import StoreSpec

_BATCH_REQUEST = BatchRequest()


@dataclass
class _Plan:
    rows: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)


def _stored_response(session_id: uuid.UUID, seq: int, fingerprint: str) -> dict[str, Any] | None:
    batch = db.session.get(MigrationBatch, (session_id, seq))
    if batch is None:
        return None
    if batch.fingerprint != fingerprint:
        raise Conflict(
            f"Batch {seq} was already received with a different body.",
            code="batch_mismatch",
            details={"seq": seq},
        )
    return batch.response


def _refuse_resent(session: MigrationSession, key: str, offset: int, count: int) -> None:
    overlap = db.session.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(
            LedgerEntry.session_id == session.id,
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


def _owners(model: Any, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
    if not ids:
        return {}
    query = select(model.id, model.user_id, model.source_digest).where(model.id.in_(ids))
    return {row_id: (owner, digest) for row_id, owner, digest in db.session.execute(query)}


def _names_unique(model: Any) -> bool:
    """True when the table's rows have a name unique per user (environments)."""
    return any(
        isinstance(constraint, UniqueConstraint)
        and {column.name for column in constraint.columns} == {"user_id", "name"}
        for constraint in model.__table__.constraints
    )


def _names_taken(model: Any, user_id: str, names: list[str]) -> dict[str, uuid.UUID]:
    if not names:
        return {}
    query = select(model.name, model.id).where(model.user_id == user_id, model.name.in_(names))
    return {name: row_id for name, row_id in db.session.execute(query)}


def _secret_free(spec: StoreSpec, raw: Any, box: SecretBox) -> Any:
    if not isinstance(raw, dict):
        return raw
    return {
        key: {"$encrypted": box.encrypt(value)} if key in spec.secret_fields and isinstance(value, str) else value
        for key, value in raw.items()
    }


def _db_row(
    spec: StoreSpec, mapped: MappedRecord, row_id: uuid.UUID, session: MigrationSession, box: SecretBox
) -> dict[str, Any]:
    assert mapped.row is not None
    row = dict(mapped.row)
    row["id"] = row_id
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    row["updated_at"] = datetime.fromisoformat(row["updated_at"])
    row["user_id"] = session.user_id
    row["source_digest"] = mapped.digest
    row["migration_session_id"] = session.id
    # Every row of a batch gets the same keys (one multi-row insert): a secret
    # column the record lacks is stored as NULL, not left out.
    for column in spec.mapper.columns:
        if column.secret:
            secret = mapped.secrets.get(column.name)
            row[f"{column.name}_encrypted"] = None if secret is None else box.encrypt(secret)
    return row


def _plan(
    spec: StoreSpec,
    model: type[MigratedRecord],
    key: str,
    session: MigrationSession,
    seq: int,
    records: list[Any],
    mapped: list[MappedRecord],
) -> _Plan:
    user_id = session.user_id
    box = secret_box()
    ids = {m.index: uuid.UUID(m.row["id"]) for m in mapped if m.row is not None}
    owners = _owners(model, list(ids.values()))
    foreign = {row_id for row_id in ids.values() if row_id in owners and owners[row_id][0] != user_id}
    moved = {row_id: uuid.UUID(relocated_id(user_id, spec.name, str(row_id))) for row_id in foreign}
    owners.update(_owners(model, list(moved.values())))
    unique_names = _names_unique(model)
    names = _names_taken(model, user_id, [m.row["name"] for m in mapped if m.row]) if unique_names else {}

    plan = _Plan()
    claimed: dict[uuid.UUID, str] = {}
    for m in mapped:
        raw = records[m.index - mapped[0].index]
        source_id = raw.get("id") if isinstance(raw, dict) else None
        warnings = list(m.warnings)
        target_id: uuid.UUID | None = None
        if m.row is None:
            outcome = "quarantined"
            plan.quarantine.append(
                {
                    "session_id": session.id,
                    "user_id": user_id,
                    "key": key,
                    "index": m.index,
                    "raw": _secret_free(spec, raw, box),
                    "reasons": m.reasons,
                    "created_at": datetime.now(UTC),
                }
            )
        else:
            target_id = ids[m.index]
            if target_id in moved:
                warnings.append({"code": "foreign_id", "field": "id"})
                target_id = moved[target_id]
            prior = claimed.get(target_id) or (owners[target_id][1] if target_id in owners else None)
            name = m.row.get("name") if unique_names else None
            if prior is not None:
                outcome = "unchanged" if prior == m.digest else "conflict"
            elif name is not None and names.get(name, target_id) != target_id:
                outcome = "conflict"
                warnings.append({"code": "name_taken", "field": "name"})
                target_id = names[name]
            else:
                outcome = "inserted"
                claimed[target_id] = m.digest
                if name is not None:
                    names[name] = target_id
                plan.rows.append(_db_row(spec, m, target_id, session, box))
        plan.ledger.append(
            {
                "session_id": session.id,
                "key": key,
                "index": m.index,
                "batch_seq": seq,
                "source_id": source_id,
                "digest": m.digest,
                "outcome": outcome,
                "target_table": None if target_id is None else spec.table,
                "target_id": target_id,
                "warnings": warnings,
            }
        )
        result: dict[str, Any] = {
            "index": m.index,
            "outcome": outcome,
            "target_id": None if target_id is None else str(target_id),
            "warnings": warnings,
        }
        if m.reasons:
            result["reasons"] = m.reasons
        plan.results.append(result)
    return plan


def put_batch(session: MigrationSession, seq: int, body: bytes) -> dict[str, Any]:
    """Apply batch `seq` of `session` (or replay its stored response) and return the response."""
    fingerprint = hashlib.sha256(body).hexdigest()
    replay = _stored_response(session.id, seq, fingerprint)
    if replay is not None:
        return replay
    payload = load_body(_BATCH_REQUEST, body)
    if session.status != "open":
        raise Conflict("This migration session is already complete.", code="session_closed")
    spec = spec_for_key(payload["key"])
    if spec is None:
        raise Unprocessable(f"{payload['key']!r} is not a store lsmigrate migrates.", code="unknown_store")
    model = record_model(spec.table)
    records, digests = payload["records"], payload["digests"]
    limit = current_app.config["MAX_BATCH_RECORDS"]
    if len(records) > limit:
        raise PayloadTooLarge(f"A batch holds at most {limit} records.", code="too_many_records")
    if len(digests) != len(records):
        raise Unprocessable("There must be one digest per record.", code="digest_mismatch")
    key = payload["key"]
    mapped = spec.map(
        records, key=key, user_id=session.user_id, migrated_at=session.created_at, offset=payload["offset"]
    )
    wrong = [m.index for m, sent in zip(mapped, digests, strict=True) if m.digest != sent]
    if wrong:
        raise Unprocessable(
            "Some records do not match their digests.", code="digest_mismatch", details={"indexes": wrong[:100]}
        )
    _refuse_resent(session, key, payload["offset"], len(records))

    plan = _plan(spec, model, key, session, seq, records, mapped)
    counts = Counter(result["outcome"] for result in plan.results)
    response = {"seq": seq, "key": key, "counts": dict(counts), "results": plan.results}
    if plan.rows:
        db.session.execute(insert(model.__table__), plan.rows)
    if plan.quarantine:
        db.session.execute(insert(QuarantinedRecord.__table__), plan.quarantine)
    if plan.ledger:
        db.session.execute(insert(LedgerEntry.__table__), plan.ledger)
    db.session.add(
        MigrationBatch(
            session_id=session.id,
            seq=seq,
            key=key,
            fingerprint=fingerprint,
            response=response,
            created_at=datetime.now(UTC),
        )
    )
    try:
        db.session.commit()
    except IntegrityError as error:
        # A concurrent request with the same seq, or rows it just inserted, won the race.
        db.session.rollback()
        replay = _stored_response(session.id, seq, fingerprint)
        if replay is not None:
            return replay
        raise Conflict("The batch collided with a concurrent write; send it again.", code="concurrent_write") from error
    if plan.rows:
        records_changed(session.user_id)
    return response
