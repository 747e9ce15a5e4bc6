"""The plan of one batch: the lookups `decide` decides on, and the parameters of the statements that follow.

Per batch: one lookup of the rows the batch's ids name (a second only when
some id is another user's), one lookup of the session's earlier ledger
entries for those ids, the names (environments), and the images of the rows
about to be overwritten, put in a conflict, or rebuilt into a superseded
record. What comes out is a `Plan`: rows to insert and to update, ledger,
quarantine and conflict rows, earlier ledger entries to mark superseded, and
the response's per-record results.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, null, select

from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry
from lsmigrate.server.db.sql import among
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.ingest.decide import (
    FOREIGN,
    SUPERSEDED,
    Batch,
    Claim,
    Decider,
    Record,
    Row,
)
from lsmigrate.server.records.digests import digest_column, row_digests
from lsmigrate.server.records.identity import relocate, relocation_candidates, relocation_salt
from lsmigrate.server.records.names import rename_taken
from lsmigrate.server.records.quarantine import (
    UNSTORABLE,
    encrypt_secrets,
    has_unstorable_text,
    quarantine_row,
    storable,
)
from lsmigrate.server.records.references import check_references
from lsmigrate.server.records.rows import (
    db_row,
    fetch_images,
    local_version,
    source_record,
    stored_secrets,
    unique_name,
)
from lsmigrate.server.records.rows import version_column as version_column_of
from lsmigrate.server.records.secrets import secret_box
from lsmigrate.shared.mapping import MappedRecord
from lsmigrate.shared.protocol import LIVE, QUARANTINED_LOCALLY

#: Outcomes that rely on the row as the batch found it: their ledger entry keeps its digest.
RELIED = frozenset({"unchanged", "kept_server", "conflict"})


@dataclass
class Plan:
    """The statements' parameters for one batch, and its response's results."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    superseded: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    closed_conflicts: list[tuple[str, int]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)


def _rows(batch: Batch, ids: set[uuid.UUID]) -> dict[uuid.UUID, Row]:
    if not ids:
        return {}
    table = batch.model.__table__
    column = version_column_of(batch.spec)
    version = table.c[column] if column is not None else None
    state = digest_column(batch.model)
    columns = [table.c.id, table.c.user_id, table.c.source_digest, table.c.migration_session_id]
    columns += [version if version is not None else null(), state if state is not None else null()]
    query = select(*columns).where(among(table.c.id, ids))
    found = {row[0]: Row(row[1], row[2], row[4], row[3], row[5]) for row in db.session.execute(query)}
    if state is None:  # computed in Python: the user's rows only, the only ones whose state is ever kept
        for row_id, digest in row_digests(batch.model, batch.user_id, found).items():
            found[row_id] = replace(found[row_id], state=digest)
    return found


def _claims(batch: Batch, ids: set[uuid.UUID]) -> dict[uuid.UUID, Claim]:
    if not ids:
        return {}
    query = select(
        LedgerEntry.target_id,
        LedgerEntry.key,
        LedgerEntry.index,
        LedgerEntry.digest,
        LedgerEntry.outcome,
        LedgerEntry.version_at,
        LedgerEntry.pre_image,
        LedgerEntry.pre_digest,
    ).where(
        among(LedgerEntry.target_id, ids),
        # Spelled so that the session's primary-key range (its whole ledger so far) cannot serve it: with
        # statistics lagging a growing session the planner would scan that range on every batch instead of
        # probing the target index once per id.
        func.coalesce(LedgerEntry.session_id, LedgerEntry.session_id) == batch.session_id,
        LedgerEntry.user_id == batch.user_id,
        LedgerEntry.target_table == batch.model.__tablename__,
        LedgerEntry.outcome.in_(LIVE),
    )
    return {row[0]: Claim(*row[1:]) for row in db.session.execute(query)}


def _finish(decider: Decider, records: list[Record], images: dict[uuid.UUID, dict[str, Any]]) -> Plan:
    """The statements' parameters, once every record is decided and the images are in hand."""
    batch, plan, box = decider.batch, Plan(), secret_box()
    spec, table, now = batch.spec, batch.model.__tablename__, datetime.now(UTC)
    keep = not batch.dry_run  # a dry run writes no quarantine and no conflicts
    for record in records:
        index, target = record.mapped.index, record.target_id
        if record.imaged:
            record.pre_image = images[target]  # type: ignore[index]
        if record.write is not None:
            assert target is not None
            row = db_row(spec, record.mapped, target, batch.owner, box, batch.model)
            if record.write == "insert":
                plan.inserts.append(row)
            else:
                values = {name: value for name, value in row.items() if name not in ("id", "user_id")}
                plan.updates.append({"b_id": target, "b_user": batch.user_id, **values})
        if keep and record.outcome in QUARANTINED_LOCALLY:
            where = None if target is None else (table, target)
            plan.quarantine.append(
                quarantine_row(spec, batch.owner, batch.key, index, record.raw, record.reasons, where)
            )
        if keep and record.outcome == "conflict":
            record.conflict_id = uuid.uuid4()
            plan.conflicts.append(
                {
                    "id": record.conflict_id,
                    "session_id": batch.session_id,
                    "user_id": batch.user_id,
                    "key": batch.key,
                    "index": index,
                    "store": spec.name,
                    "kind": "exists_differs",
                    "target_table": table,
                    "target_id": target,
                    "local": encrypt_secrets(spec, record.raw, box),
                    "local_digest": record.mapped.digest,
                    "server": images[target],  # type: ignore[index]
                    "status": "open",
                    "resolution": None,
                    "created_at": now,
                    "resolved_at": None,
                }
            )
        plan.ledger.append(_ledger_entry(batch, record, now))
        result: dict[str, Any] = {
            "index": index,
            "outcome": record.outcome,
            "target_id": None if target is None else str(target),
            "warnings": record.warnings,
        }
        if record.reasons:
            result["reasons"] = record.reasons
        if record.conflict_id is not None:
            result["conflict_id"] = str(record.conflict_id)
        plan.results.append(result)
    for claim, target in decider.rebuilt:
        picture = images[target]
        raw = source_record(spec, picture, stored_secrets(spec, picture, box.reading(table, target)))
        plan.quarantine.append(
            quarantine_row(spec, batch.owner, claim.key, claim.index, raw, [SUPERSEDED], (table, target))
        )
    plan.superseded = [{"b_key": claim.key, "b_index": claim.index} for claim in decider.superseded]
    plan.closed_conflicts = decider.closed_conflicts
    return plan


def _ledger_entry(batch: Batch, record: Record, now: datetime) -> dict[str, Any]:
    raw = record.raw
    source_id = raw.get(batch.spec.id_field) if isinstance(raw, dict) and batch.spec.id_field else None
    return {
        "session_id": batch.session_id,
        "user_id": batch.user_id,
        "key": batch.key,
        "index": record.mapped.index,
        "store": batch.spec.name,
        "batch_seq": batch.seq,
        "source_id": storable(source_id),
        "digest": record.mapped.digest,
        "outcome": record.outcome,
        "target_table": None if record.target_id is None else batch.model.__tablename__,
        "target_id": record.target_id,
        "warnings": record.warnings,
        "version_at": record.version,
        "pre_image": record.pre_image if record.outcome == "updated" else None,
        "pre_digest": record.pre_digest if record.outcome == "updated" else None,
        "row_digest": record.row_digest,  # a write's is filled in once the row is written
        "written_at": now if record.write is not None else None,
    }


def _name_rows(batch: Batch, writers: list[Record]) -> None:
    """A name another row of the user holds becomes "Name (2)"… (warning `name_taken`, the original kept)."""
    writes = [(record.target_id, record.mapped) for record in writers if record.target_id is not None]
    for record, renamed in zip(writers, rename_taken(batch.spec, batch.model, batch.user_id, writes), strict=True):
        if renamed is not None:
            record.mapped = renamed
            named = unique_name(batch.spec, batch.model)
            assert named is not None  # only a table with a unique name renames
            record.warnings.append({"code": "name_taken", "field": named[1]})


def plan_batch(batch: Batch, records: list[Any], mapped: list[MappedRecord], *, check_text: bool = True) -> Plan:
    """Decide every record of the batch against the database and the session's ledger.

    `check_text=False` says no record can hold text PostgreSQL cannot store (the body had no escape
    that could make one: `may_hold_unstorable_text`), which spares looking through every record.
    """
    decider = Decider(batch, current_lsmigrate().conflict_policy(batch.spec))
    spec, user_id = batch.spec, batch.user_id
    every: list[Record] = []
    pending: list[Record] = []
    for one, raw in zip(mapped, records, strict=True):
        record = Record(one, raw, warnings=list(one.warnings))
        every.append(record)
        unstorable = [UNSTORABLE] if check_text and has_unstorable_text(raw) else []
        if one.row is None or unstorable:
            record.reasons = [*one.reasons, *unstorable]
        else:
            record.target_id, record.version = uuid.UUID(one.row["id"]), local_version(spec, one)
            pending.append(record)

    rows = _rows(batch, {record.target_id for record in pending if record.target_id is not None})
    foreign = {row_id for row_id, row in rows.items() if row.user_id != user_id}
    if foreign:
        salt = relocation_salt()
        candidates = {row_id: relocation_candidates(salt, user_id, spec.name, row_id) for row_id in foreign}
        rows.update(_rows(batch, {place for pair in candidates.values() for place in pair}))

        def owner(row_id: uuid.UUID) -> str | None:
            row = rows.get(row_id)
            return None if row is None else row.user_id

        moved = {row_id: relocate(pair, owner, user_id) for row_id, pair in candidates.items()}
        for record in pending:
            if record.target_id in moved:
                record.target_id = moved[record.target_id]
                record.warnings.append({"code": "foreign_id", "field": decider.id_field})
                if record.target_id is None:
                    record.reasons = [FOREIGN]
        pending = [record for record in pending if record.target_id is not None]

    groups: dict[uuid.UUID, list[Record]] = defaultdict(list)
    for record in pending:
        groups[record.target_id].append(record)  # type: ignore[index]
    claims = _claims(batch, set(groups))
    for target, group in groups.items():
        row = rows.get(target)
        decider.decide(target, group, claims.get(target), row if row is not None and row.user_id == user_id else None)
    for record in pending:
        row = rows.get(record.target_id)  # type: ignore[arg-type]
        if record.imaged:
            record.pre_digest = None if row is None else row.state
        elif record.outcome in RELIED:
            record.row_digest = None if row is None else row.state
    writes = [record for record in pending if record.write is not None]
    _name_rows(batch, writes)
    check_references(batch, writes)
    return _finish(decider, every, fetch_images(batch.model, user_id, decider.images_wanted))
