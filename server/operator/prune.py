"""Retention (`lsmigrate prune --older-than 90d`): what only rollback and replay need, cleared once a session is
long settled.

A session is *expired* when it was verified (`completed_at`) or rolled back (`rolled_back_at`) before the
cutoff. Pruning it:

1. marks it (`pruned_at`), in a transaction of its own: from then on its rollback is refused (409
   `session_pruned`), so no rollback ever runs on half of its pre-images;
2. replaces each stored batch response by its summary (`seq`, `key`, outcome `counts`, `pruned_at`): the
   per-record results (targets, warnings) go. The batch's row and fingerprint stay: they say which batches the
   session acknowledged (the audit trail, a resuming page), and another body under that seq is still
   `batch_mismatch` (the same body again is answered with the summary: a page sends batches to open sessions
   only, never to one settled that long ago);
3. clears the ledger's pre-images (`pre_image`, the whole rows a rollback would put back). The digests stay
   (`row_digest`, `pre_digest`: a few bytes a row, and what the rollbacks of *other* sessions compare rows
   with). A rolled-back session's writes that its rollback could not take back (`undone_at` NULL: a later
   session stood on them) keep their pre-image: rolling that later session back still finishes the job;
4. deletes the session's quarantine entries (the raw records and their reasons). A key whose latest verified
   session held a quarantined record can then no longer be rebuilt on the server (GET /keys/{key} answers 409
   `key_unrebuildable`); the page keeps such a key in localStorage unless its store says otherwise.

Sessions inside the window (and open or abandoned ones) are not touched: their rollback keeps working.
Every step works in transactions of at most `batch_size` rows, each committed, so it holds no lock long and
never a user's lock: ingest goes on. It is idempotent: a run that stopped half-way is finished by the next
one (a marked session is cleared whatever the cutoff of that run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, bindparam, delete, func, or_, select, tuple_, update

from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationBatch, MigrationSession, QuarantinedRecord


@dataclass
class PruneReport:
    """What a prune did (or, as a dry run, would do)."""

    cutoff: datetime
    dry_run: bool
    sessions: int = 0  # sessions newly marked pruned
    responses: int = 0  # batch responses replaced by their summary
    pre_images: int = 0  # ledger pre-images cleared
    quarantine: int = 0  # quarantine entries deleted
    pre_images_kept: int = 0  # pre-images of pruned rolled-back sessions a later rollback may still need
    kept_sessions: int = 0  # sessions not pruned (open, abandoned, or settled inside the window)
    transactions: int = 0


def expired(cutoff: datetime) -> ColumnElement[bool]:
    """Sessions verified or rolled back before `cutoff`."""
    return or_(
        and_(MigrationSession.status == "verified", MigrationSession.completed_at < cutoff),
        and_(MigrationSession.status == "rolled_back", MigrationSession.rolled_back_at < cutoff),
    )


def _has_results() -> ColumnElement[bool]:
    """Batches whose stored response still holds its per-record results (asked without reading them)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return MigrationBatch.response.op("?", return_type=Boolean)("results")
    return func.json_type(MigrationBatch.response, "$.results").is_not(None)


class _Pruner:
    def __init__(self, cutoff: datetime, batch_size: int, dry_run: bool) -> None:
        self.cutoff, self.batch_size, self.dry_run = cutoff, batch_size, dry_run
        self.now = datetime.now(UTC)
        self.report = PruneReport(cutoff, dry_run)
        # A dry run marks nothing: it counts in the sessions a run would mark, as well as those marked before.
        marked = MigrationSession.pruned_at.is_not(None)
        self.targets = or_(marked, expired(cutoff)) if dry_run else marked

    def _commit(self) -> None:
        db.session.commit()
        self.report.transactions += 1

    def _count(self, query: Any) -> int:
        return int(db.session.scalar(select(func.count()).select_from(query.subquery())) or 0)

    def mark(self) -> None:
        waiting = select(MigrationSession.id).where(expired(self.cutoff), MigrationSession.pruned_at.is_(None))
        if self.dry_run:
            self.report.sessions = self._count(waiting)
            return
        while ids := db.session.scalars(waiting.order_by(MigrationSession.id).limit(self.batch_size)).all():
            # Expiry asked again in the UPDATE: a rollback that held the row (rollback_session locks it) and
            # committed meanwhile has made the session recent, and it is left alone.
            marked = db.session.execute(
                update(MigrationSession)
                .where(MigrationSession.id.in_(ids), expired(self.cutoff), MigrationSession.pruned_at.is_(None))
                .values(pruned_at=self.now)
            )
            self.report.sessions += marked.rowcount  # type: ignore[attr-defined]
            self._commit()

    def responses(self) -> None:
        waiting = (
            select(MigrationBatch.session_id, MigrationBatch.seq, MigrationBatch.key, MigrationBatch.response["counts"])
            .join(MigrationSession, MigrationSession.id == MigrationBatch.session_id)
            .where(self.targets, _has_results())
        )
        if self.dry_run:
            self.report.responses = self._count(waiting)
            return
        batches = MigrationBatch.__table__
        one = (batches.c.session_id == bindparam("b_session")) & (batches.c.seq == bindparam("b_seq"))
        moment = self.now.isoformat()
        while rows := db.session.execute(waiting.limit(self.batch_size)).all():
            summaries = [
                {
                    "b_session": session_id,
                    "b_seq": seq,
                    "response": {"seq": seq, "key": key, "counts": counts or {}, "pruned_at": moment},
                }
                for session_id, seq, key, counts in rows
            ]
            db.session.execute(update(batches).where(one), summaries)
            self.report.responses += len(rows)
            self._commit()

    def pre_images(self) -> None:
        ledger = LedgerEntry.__table__
        needed = and_(MigrationSession.status == "rolled_back", ledger.c.undone_at.is_(None))
        held = (
            select(ledger.c.session_id, ledger.c.key, ledger.c.index)
            .join(MigrationSession, MigrationSession.id == ledger.c.session_id)
            .where(self.targets, ledger.c.pre_image.is_not(None))
        )
        self.report.pre_images_kept = self._count(held.where(needed))
        waiting = held.where(~needed)
        if self.dry_run:
            self.report.pre_images = self._count(waiting)
            return
        key = tuple_(ledger.c.session_id, ledger.c.key, ledger.c.index)
        while rows := db.session.execute(waiting.limit(self.batch_size)).all():
            cleared = db.session.execute(
                update(ledger).where(key.in_([tuple(row) for row in rows])).values(pre_image=None)
            )
            self.report.pre_images += cleared.rowcount  # type: ignore[attr-defined]
            self._commit()

    def quarantine(self) -> None:
        waiting = (
            select(QuarantinedRecord.id)
            .join(MigrationSession, MigrationSession.id == QuarantinedRecord.session_id)
            .where(self.targets)
        )
        if self.dry_run:
            self.report.quarantine = self._count(waiting)
            return
        while ids := db.session.scalars(waiting.limit(self.batch_size)).all():
            deleted = db.session.execute(delete(QuarantinedRecord).where(QuarantinedRecord.id.in_(ids)))
            self.report.quarantine += deleted.rowcount  # type: ignore[attr-defined]
            self._commit()

    def kept(self) -> None:
        self.report.kept_sessions = self._count(
            select(MigrationSession.id).where(MigrationSession.pruned_at.is_(None), ~expired(self.cutoff))
        )


def prune(older_than: timedelta, batch_size: int = 500, *, dry_run: bool = False) -> PruneReport:
    """Prune the sessions verified or rolled back more than `older_than` ago (see the module's docstring), in
    transactions of at most `batch_size` rows; a dry run counts what would go and changes nothing."""
    if older_than <= timedelta(0) or batch_size < 1:
        raise ValueError("older_than and batch_size must be positive")
    pruner = _Pruner(datetime.now(UTC) - older_than, batch_size, dry_run)
    pruner.mark()
    pruner.responses()
    pruner.pre_images()
    pruner.quarantine()
    pruner.kept()
    db.session.rollback()  # the counts' transaction: nothing to keep
    return pruner.report
