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
from lsmigrate.server.db.models import LedgerEntry, MigrationSession
from lsmigrate.server.errors import Conflict
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.signals import send_records_changed
from lsmigrate.shared.canonical import manifest_digest
from lsmigrate.shared.protocol import ACCOUNTED

# Outcomes that leave the record in a row or the quarantine, with nothing to decide.
ACCOUNTED_OUTCOMES = ACCOUNTED


def _ledger_by_key(session: MigrationSession) -> dict[str, list[tuple[int, str, str]]]:
    query = (
        select(LedgerEntry.key, LedgerEntry.index, LedgerEntry.digest, LedgerEntry.outcome)
        .where(LedgerEntry.session_id == session.id)
        .order_by(LedgerEntry.key, LedgerEntry.index)
    )
    ledger: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for key, index, record_digest, outcome in db.session.execute(query):
        ledger[key].append((index, record_digest, outcome))
    return ledger


def _mismatch(key: str, entries: list[tuple[int, str, str]], claimed: dict[str, Any] | None) -> dict | None:
    if claimed is None:
        return {"key": key, "problem": "not_in_manifest", "server_count": len(entries)}
    if [index for index, _, _ in entries] != list(range(len(entries))) or len(entries) != claimed["count"]:
        return {"key": key, "problem": "count", "client_count": claimed["count"], "server_count": len(entries)}
    if manifest_digest(record_digest for _, record_digest, _ in entries) != claimed["digest"]:
        return {"key": key, "problem": "digest", "client_count": claimed["count"], "server_count": len(entries)}
    return None


def complete_session(session: MigrationSession, manifest: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Verify the manifest; on a match mark the session verified and list the deletable keys."""
    if session.status == "rolled_back":
        raise Conflict("This migration session was rolled back; no key may be deleted.", code="session_closed")
    ledger = _ledger_by_key(session)
    mismatches = []
    for key in sorted(set(manifest) | set(ledger)):
        problem = _mismatch(key, ledger.get(key, []), manifest.get(key))
        if problem is not None:
            mismatches.append(problem)
    if mismatches:
        raise Conflict(
            "The server's ledger does not match the client's manifest; no key may be deleted.",
            code="manifest_mismatch",
            details={"mismatches": mismatches},
        )

    deletable, kept, counts = [], {}, {}
    catalog = current_lsmigrate().catalog
    for key in sorted(manifest):
        outcomes = Counter(outcome for _, _, outcome in ledger.get(key, []))
        counts[key] = dict(outcomes)
        unaccounted = {outcome: n for outcome, n in outcomes.items() if outcome not in ACCOUNTED_OUTCOMES}
        spec = catalog.spec_for_key(key)
        if spec is not None and spec.cleanup == "keep":
            kept[key] = {"reason": "store_keeps_key", "outcomes": unaccounted}
        elif unaccounted:
            reason = "open_conflicts" if set(unaccounted) == {"conflict"} else "unresolved_records"
            kept[key] = {"reason": reason, "outcomes": unaccounted}
        else:
            deletable.append(key)
    if session.status == "open":
        session.status = "verified"
        session.completed_at = datetime.now(UTC)
        db.session.commit()
        if not session.dry_run:
            # The batches only dropped the cached snapshot; the finished session writes it through once.
            send_records_changed(session.user_id)
    return {
        "session_id": str(session.id),
        "dry_run": session.dry_run,
        "verified": True,
        "deletable_keys": deletable,
        "kept_keys": kept,
        "counts": counts,
    }
