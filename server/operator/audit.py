"""A session's audit trail (`lsmigrate show SID`, the operator page): who did what to it, and when.

`session_audit` reads it from the bookkeeping tables, nothing else: the session, its batches (each as
it was answered: the outcome counts of its stored response, and whether `prune` has cleared the per-record
results since), its conflicts and their settlement, its rollback, and all of it again as one chronological
list of events `{"at", "actor", "action", "details"}`:

    session_opened      user:<id>       the session began (client session id, dry run)
    batch_received      user:<id>       one batch: seq, key, store(s), records, outcome counts
    conflict_opened     user:<id>       a record a policy of `ask` left to the user (key, index, kind), as
                                        its batch was received
    conflict_resolved   user:<id>       the user kept the local or the server version
    conflict_closed     who closed it   superseded (user:<id>: a newer version in a batch), abandoned
                                        (lsmigrate: another session opened), rolled_back (the rollback's actor)
    session_verified    user:<id>       the manifest matched
    session_rolled_back user:<id> | cli | operator:<name>: what was deleted, restored, skipped
    session_pruned      cli             `lsmigrate prune` cleared what only rollback and replay needed

An actor the schema did not record (a rollback from before migration 0011, and a conflict it closed) is
"unknown"; a resolution from before then is the user's, the only one who can resolve.
`recent_sessions` lists the sessions an operator can open the trail of.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationBatch, MigrationConflict, MigrationSession

UNKNOWN = "unknown"
#: Who closes a conflict when its session is abandoned: lsmigrate itself, as another session opens.
SYSTEM = "lsmigrate"
#: The order of events that carry the same moment.
_ORDER = (
    "session_opened",
    "batch_received",
    "conflict_opened",
    "conflict_resolved",
    "conflict_closed",
    "session_verified",
    "session_rolled_back",
    "session_pruned",
)


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _event(at: datetime, actor: str, action: str, **details: Any) -> dict[str, Any]:
    return {"at": at, "actor": actor, "action": action, "details": details}


def _batches(session: MigrationSession) -> list[dict[str, Any]]:
    """The session's batches in seq order: as answered (the stored response's counts), stores from the ledger."""
    counts = MigrationBatch.response["counts"]
    pruned = MigrationBatch.response["pruned_at"].as_string()
    query = (
        select(MigrationBatch.seq, MigrationBatch.key, MigrationBatch.created_at, counts, pruned)
        .where(MigrationBatch.session_id == session.id, MigrationBatch.user_id == session.user_id)
        .order_by(MigrationBatch.seq)
    )
    stores: dict[int, list[str]] = defaultdict(list)
    per_store = (
        select(LedgerEntry.batch_seq, LedgerEntry.store)
        .where(LedgerEntry.session_id == session.id, LedgerEntry.user_id == session.user_id)
        .group_by(LedgerEntry.batch_seq, LedgerEntry.store)
        .order_by(LedgerEntry.batch_seq, LedgerEntry.store)
    )
    for seq, store in db.session.execute(per_store):
        if store is not None:
            stores[seq].append(store)
    batches = []
    for seq, key, received, outcome_counts, pruned_at in db.session.execute(query):
        outcome_counts = dict(sorted((outcome_counts or {}).items()))
        batches.append(
            {
                "seq": seq,
                "received_at": received,
                "key": key,
                "stores": stores.get(seq, []),
                "records": sum(outcome_counts.values()),
                "counts": outcome_counts,
                # After `prune`: the counts stay, the per-record results (targets, warnings) are gone.
                "results_pruned": pruned_at is not None,
            }
        )
    return batches


def _conflicts(session: MigrationSession) -> list[dict[str, Any]]:
    """The session's conflicts in source order, with how and by whom each was settled."""
    entry = (
        (LedgerEntry.user_id == MigrationConflict.user_id)
        & (LedgerEntry.session_id == MigrationConflict.session_id)
        & (LedgerEntry.key == MigrationConflict.key)
        & (LedgerEntry.index == MigrationConflict.index)
    )
    query = (
        select(MigrationConflict, LedgerEntry.batch_seq)
        .outerjoin(LedgerEntry, entry)
        .where(MigrationConflict.session_id == session.id, MigrationConflict.user_id == session.user_id)
        .order_by(MigrationConflict.key, MigrationConflict.index)
    )
    user = f"user:{session.user_id}"
    conflicts = []
    for conflict, batch_seq in db.session.execute(query):
        by = conflict.resolved_by
        if by is None and conflict.status != "open":
            by = {
                "local": user,  # only the user resolves, through the API
                "server": user,
                "superseded": user,  # a newer version of the record came in the user's own batch
                "abandoned": SYSTEM,
                "rolled_back": session.rolled_back_by or UNKNOWN,
            }.get(conflict.resolution or "", UNKNOWN)
        conflicts.append(
            {
                "id": str(conflict.id),
                "key": conflict.key,
                "index": conflict.index,
                "batch_seq": batch_seq,
                "kind": conflict.kind,
                "target_table": conflict.target_table,
                "target_id": str(conflict.target_id),
                "status": conflict.status,
                "resolution": conflict.resolution,
                "created_at": conflict.created_at,
                "resolved_at": conflict.resolved_at,
                "resolved_by": by,
            }
        )
    return conflicts


def _rollback(session: MigrationSession) -> dict[str, Any] | None:
    if session.rolled_back_at is None:
        return None
    report = session.rollback_report or {}
    skipped = report.get("skipped", [])
    return {
        "at": session.rolled_back_at,
        "by": session.rolled_back_by or UNKNOWN,
        "deleted": report.get("deleted", {}),
        "restored": report.get("restored", {}),
        "skipped": len(skipped),
        "skipped_reasons": dict(sorted(Counter(skip.get("reason", UNKNOWN) for skip in skipped).items())),
        "conflicts_closed": report.get("conflicts_closed", 0),
    }


def _events(
    session: MigrationSession,
    batches: list[dict[str, Any]],
    conflicts: list[dict[str, Any]],
    rollback: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    user = f"user:{session.user_id}"
    events = [
        _event(
            session.created_at,
            user,
            "session_opened",
            client_session_id=session.client_session_id,
            dry_run=session.dry_run,
        )
    ]
    received = {}
    for batch in batches:
        details = {name: batch[name] for name in ("seq", "key", "stores", "records", "counts", "results_pruned")}
        events.append(_event(batch["received_at"], user, "batch_received", **details))
        received[batch["seq"]] = batch["received_at"]
    for conflict in conflicts:
        where = {"conflict_id": conflict["id"], "key": conflict["key"], "index": conflict["index"]}
        # Found while its batch was applied, and committed with it: it opened when the batch was received.
        opened = received.get(conflict["batch_seq"], conflict["created_at"])
        details = {**where, "kind": conflict["kind"], "batch_seq": conflict["batch_seq"]}
        events.append(_event(opened, user, "conflict_opened", **details))
        if conflict["resolved_at"] is not None:
            action = "conflict_resolved" if conflict["status"] == "resolved" else "conflict_closed"
            events.append(
                _event(
                    conflict["resolved_at"], conflict["resolved_by"], action, **where, resolution=conflict["resolution"]
                )
            )
    if session.completed_at is not None:
        events.append(_event(session.completed_at, user, "session_verified"))
    if rollback is not None:
        details = {name: value for name, value in rollback.items() if name not in ("at", "by")}
        events.append(_event(rollback["at"], rollback["by"], "session_rolled_back", **details))
    if session.pruned_at is not None:
        events.append(_event(session.pruned_at, "cli", "session_pruned"))
    events.sort(key=lambda event: (event["at"], _ORDER.index(event["action"])))
    return events


def _dated(value: Any) -> Any:
    """`value` with every datetime in it as ISO 8601 text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {name: _dated(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_dated(item) for item in value]
    return value


def session_audit(session: MigrationSession) -> dict[str, Any]:
    """The session's audit trail: the session, its batches, conflicts and rollback, and every event in order."""
    batches, conflicts, rollback = _batches(session), _conflicts(session), _rollback(session)
    described = {
        "session_id": str(session.id),
        "user_id": session.user_id,
        "client_session_id": session.client_session_id,
        "status": session.status,
        "dry_run": session.dry_run,
        "created_at": session.created_at,
        "last_active_at": session.last_active_at,
        "completed_at": session.completed_at,
        "rolled_back_at": session.rolled_back_at,
        "rolled_back_by": None if session.rolled_back_at is None else session.rolled_back_by or UNKNOWN,
        "pruned_at": session.pruned_at,
    }
    trail = {
        "session": described,
        "batches": batches,
        "conflicts": conflicts,
        "rollback": rollback,
        "events": _events(session, batches, conflicts, rollback),
    }
    return dict(_dated(trail))


def recent_sessions(limit: int = 50, user_id: str | None = None) -> list[dict[str, Any]]:
    """The newest `limit` sessions (of `user_id` only, when given), each with its records by outcome."""
    query = select(MigrationSession).order_by(MigrationSession.created_at.desc(), MigrationSession.id).limit(limit)
    if user_id is not None:
        query = query.where(MigrationSession.user_id == user_id)
    sessions = list(db.session.scalars(query))
    totals: dict[uuid.UUID, dict[str, int]] = {session.id: {} for session in sessions}
    if totals:
        tally = (
            select(LedgerEntry.session_id, LedgerEntry.outcome, func.count())
            .where(
                LedgerEntry.user_id.in_({session.user_id for session in sessions}),
                LedgerEntry.session_id.in_(list(totals)),
            )
            .group_by(LedgerEntry.session_id, LedgerEntry.outcome)
        )
        for session_id, outcome, n in db.session.execute(tally):
            totals[session_id][outcome] = n
    return [
        {
            "session_id": str(session.id),
            "user_id": session.user_id,
            "status": session.status,
            "dry_run": session.dry_run,
            "created_at": _moment(session.created_at),
            "completed_at": _moment(session.completed_at),
            "rolled_back_at": _moment(session.rolled_back_at),
            "pruned_at": _moment(session.pruned_at),
            "records": dict(sorted(totals[session.id].items())),
        }
        for session in sessions
    ]
