"""Completing a session: the client's manifest checked against the ledger.

A key may be deleted from localStorage only when the ledger holds exactly
the records the client read from it (same count, same digest over their
digests in source order) and every one of them is accounted for: in a row
(inserted, updated, unchanged) or in the quarantine (quarantined,
superseded, kept_server). A key with a record in open conflict is kept
(reason `open_conflicts`) until the conflict is resolved; `complete` may be
called again then. A mismatch is 409 with the differences and no key. A dry
run answers the same, with `"dry_run": true`: the client deletes nothing.
A rolled-back session cannot complete (409 `session_closed`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationSession, QuarantinedRecord
from lsmigrate.server.errors import Conflict
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.sessions import durable
from lsmigrate.server.sessions.keys import document_of, remainder_of
from lsmigrate.server.signals import send_records_changed
from lsmigrate.shared.canonical import manifest_digest
from lsmigrate.shared.keys import KEEP, cleanup_action, skeleton_digest
from lsmigrate.shared.protocol import ACCOUNTED, QUARANTINED_LOCALLY, Outcome

# Outcomes that leave the record in a row or the quarantine, with nothing to decide.
ACCOUNTED_OUTCOMES = ACCOUNTED
#: Outcomes whose record is a row of its store's table.
_IN_A_ROW = (Outcome.INSERTED, Outcome.UPDATED, Outcome.UNCHANGED)


def _ledger_by_key(session: MigrationSession) -> dict[str, list[tuple[int, str, str, str | None]]]:
    query = (
        select(LedgerEntry.key, LedgerEntry.index, LedgerEntry.digest, LedgerEntry.outcome, LedgerEntry.store)
        .where(LedgerEntry.user_id == session.user_id, LedgerEntry.session_id == session.id)
        .order_by(LedgerEntry.key, LedgerEntry.index)
    )
    ledger: dict[str, list[tuple[int, str, str, str | None]]] = defaultdict(list)
    for key, index, record_digest, outcome, store in db.session.execute(query):
        ledger[key].append((index, record_digest, outcome, store))
    return ledger


def _mismatch(key: str, entries: list[tuple[int, str, str, str | None]], claimed: dict[str, Any] | None) -> dict | None:
    if claimed is None:
        return {"key": key, "problem": "not_in_manifest", "server_count": len(entries)}
    if [entry[0] for entry in entries] != list(range(len(entries))) or len(entries) != claimed["count"]:
        return {"key": key, "problem": "count", "client_count": claimed["count"], "server_count": len(entries)}
    if manifest_digest(entry[1] for entry in entries) != claimed["digest"]:
        return {"key": key, "problem": "digest", "client_count": claimed["count"], "server_count": len(entries)}
    stores = current_lsmigrate().catalog.stores_for_key(key)
    names = [spec.name for spec in stores]
    if sorted(claimed["stores"]) != sorted(names) or sum(claimed["stores"].values()) != claimed["count"]:
        return {"key": key, "problem": "stores", "client_stores": claimed["stores"], "server_stores": names}
    expected = [name for name in names for _ in range(claimed["stores"][name])]
    if [entry[3] for entry in entries] != expected:
        return {"key": key, "problem": "stores", "client_stores": claimed["stores"], "server_stores": names}
    return None


def _check_value(
    session: MigrationSession, key: str, entries: list[tuple[int, str, str, str | None]], claimed: dict[str, Any]
) -> dict[str, Any] | None:
    """The key's remainder is the one the page read, and with the records it rebuilds the key's value."""
    remainder = remainder_of(session, key)
    if remainder is None:
        return {"key": key, "problem": "remainder_missing"}
    if remainder.digest != claimed["remainder"]:
        return {"key": key, "problem": "remainder"}
    digests: dict[str, list[str]] = defaultdict(list)
    for _, record_digest, _, store in entries:
        digests[store or ""].append(record_digest)
    try:
        value = skeleton_digest(document_of(remainder), digests)
    except (KeyError, IndexError, TypeError, ValueError):
        return {"key": key, "problem": "unrebuildable"}
    if value != claimed["value"]:
        return {"key": key, "problem": "value"}
    if not session.dry_run:
        missing = _records_not_held(session, key)
        if missing:
            return {"key": key, "problem": "records_not_held", "indexes": missing[:100]}
    remainder.value_digest = value
    return None


def _records_not_held(session: MigrationSession, key: str) -> list[int]:
    """The indexes of the key's records whose place the ledger names does not hold them: a row missing, or one
    written from another record (its source digest), or no copy in the quarantine. Set-based: one query per
    table the key's stores write into, one for the quarantine."""
    lsmigrate = current_lsmigrate()
    ledger = LedgerEntry.__table__
    mine = (ledger.c.user_id == session.user_id) & (ledger.c.session_id == session.id) & (ledger.c.key == key)
    missing: list[int] = []
    for spec in lsmigrate.catalog.stores_for_key(key):
        table = lsmigrate.model_for(spec).__table__
        # Joined on the row's primary key alone, the owner checked after: with the owner in the join, a planner
        # whose statistics predate this user's rows (a new user's first session) estimated one row, chose a
        # nested loop over the user's index, and read the user's rows once per record (4 s for 10,000).
        query = (
            select(ledger.c.index)
            .select_from(ledger.outerjoin(table, table.c.id == ledger.c.target_id))
            .where(mine, ledger.c.store == spec.name, ledger.c.outcome.in_(_IN_A_ROW))
            .where(
                table.c.id.is_(None) | (table.c.user_id != session.user_id) | (table.c.source_digest != ledger.c.digest)
            )
        )
        missing += db.session.scalars(query).all()
    quarantine = QuarantinedRecord.__table__
    kept = (
        (quarantine.c.user_id == ledger.c.user_id)
        & (quarantine.c.session_id == ledger.c.session_id)
        & (quarantine.c.key == ledger.c.key)
        & (quarantine.c.index == ledger.c.index)
    )
    query = (
        select(ledger.c.index)
        .where(mine, ledger.c.outcome.in_(QUARANTINED_LOCALLY))
        .where(~select(quarantine.c.id).where(kept).exists())
    )
    missing += db.session.scalars(query).all()
    return sorted(missing)


def _held_by_others(session: MigrationSession) -> set[str]:
    """Keys with a record quarantined because its id and relocated id are other users' rows (`foreign_id`):
    such a key stays whatever its store says, since no user's upload may decide what another's browser loses."""
    query = select(LedgerEntry.key, LedgerEntry.warnings).where(
        LedgerEntry.user_id == session.user_id,
        LedgerEntry.session_id == session.id,
        LedgerEntry.outcome == Outcome.QUARANTINED,
    )
    return {
        key
        for key, warnings in db.session.execute(query)
        if any(isinstance(w, dict) and w.get("code") == "foreign_id" for w in warnings or ())
    }


def complete_session(session: MigrationSession, manifest: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Verify the manifest; on a match mark the session verified and list the keys the page may clean up."""
    if session.status == "rolled_back":
        raise Conflict("This migration session was rolled back; no key may be deleted.", code="session_closed")
    ledger = _ledger_by_key(session)
    mismatches = []
    for key in sorted(set(manifest) | set(ledger)):
        problem = _mismatch(key, ledger.get(key, []), manifest.get(key))
        if problem is None and key in manifest:
            problem = _check_value(session, key, ledger.get(key, []), manifest[key])
        if problem is not None:
            mismatches.append(problem)
    if mismatches:
        db.session.rollback()
        raise Conflict(
            "The server's ledger does not match the client's manifest; no key may be deleted.",
            code="manifest_mismatch",
            details={"mismatches": mismatches},
        )

    deletable: list[str] = []
    kept: dict[str, dict[str, Any]] = {}
    counts: dict[str, dict[str, int]] = {}
    cleanup: dict[str, str] = {}
    catalog = current_lsmigrate().catalog
    foreign = _held_by_others(session)
    for key in sorted(manifest):
        entries = ledger.get(key, [])
        outcomes = Counter(entry[2] for entry in entries)
        counts[key] = dict(outcomes)
        unaccounted = {outcome: n for outcome, n in outcomes.items() if outcome not in ACCOUNTED_OUTCOMES}
        # Records that could not be mapped (not the losers of a conflict, whose winner is migrated).
        quarantined = sorted({entry[3] for entry in entries if entry[2] == Outcome.QUARANTINED and entry[3]})
        open_conflicts = set(unaccounted) == {"conflict"}
        if unaccounted and not open_conflicts:
            kept[key] = {"reason": "unresolved_records", "outcomes": unaccounted}
            continue
        action, reason = cleanup_action(
            catalog.stores_for_key(key), quarantined=quarantined, open_conflicts=open_conflicts
        )
        if key in foreign:
            action, reason = KEEP, "foreign_id"
        if action == KEEP:
            kept[key] = {"reason": reason, "outcomes": unaccounted}
        else:
            deletable.append(key)
            cleanup[key] = action
    if session.status == "open":
        session.status = "verified"
        session.completed_at = datetime.now(UTC)
    durable()  # the page deletes keys on this answer: the commit must not be lost
    db.session.commit()
    if not session.dry_run and session.completed_at is not None:
        # The batches only dropped the cached snapshot; the finished session writes it through once.
        send_records_changed(session.user_id)
    return {
        "session_id": str(session.id),
        "dry_run": session.dry_run,
        "verified": True,
        "deletable_keys": deletable,
        "cleanup": cleanup,
        "kept_keys": kept,
        "counts": counts,
    }
