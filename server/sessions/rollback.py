"""Undoing a session on the server (design §1.4): what it inserted deleted, what it overwrote restored.

From the session's ledger: a row whose outcome is `inserted` is deleted, a
row whose outcome is `updated` gets its pre-image back (the row as it was
before the session first wrote it). Only the session user's rows, and only
rows that still hold what this session wrote (the row names this session and
the digest the ledger recorded); a row changed since, gone, or that another
session (not rolled back, not a dry run) found `unchanged` as this session
wrote it (that session's record now exists only as this row: roll that one
back first), or whose pre-image's name another row has taken since, is left
as it is and reported as skipped, with the reason. Rows go, then pre-images come
back, in one transaction; the user's cached records are invalidated. The
session's open conflicts are closed; its ledger and quarantine stay, as the
audit trail (the quarantine holds raw values the browser may have deleted).

The session ends `rolled_back` with the report stored: asking again
answers the same report and changes nothing. A dry run wrote no rows: its
rollback only closes it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationConflict, MigrationSession
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.records.rows import image_values, unique_per_user
from lsmigrate.server.sessions import lock_user
from lsmigrate.server.signals import send_records_changed

WRITES = ("inserted", "updated")


def _relied_on(session: MigrationSession, table: str, ids: list[uuid.UUID]) -> set[tuple[uuid.UUID | None, str]]:
    """(row id, digest) pairs another live session found `unchanged`: its record exists only as that row."""
    query = (
        select(LedgerEntry.target_id, LedgerEntry.digest)
        .join(MigrationSession, MigrationSession.id == LedgerEntry.session_id)
        .where(
            LedgerEntry.target_id.in_(ids),
            LedgerEntry.session_id != session.id,
            LedgerEntry.target_table == table,
            LedgerEntry.outcome == "unchanged",
            MigrationSession.status != "rolled_back",
            MigrationSession.dry_run.is_(False),
        )
    )
    return {(row_id, row_digest) for row_id, row_digest in db.session.execute(query)}


def _names_taken(model: Any, user_id: str, restored: list[dict[str, Any]], leaving: set[uuid.UUID]) -> set[uuid.UUID]:
    """Ids of rows whose pre-image holds a per-user unique value (a name) another row holds now, one staying."""
    table, clashes = model.__table__, set()
    for name in unique_per_user(model):
        column = table.c[name]
        wanted = {values[name]: values["b_id"] for values in restored}
        query = select(column, table.c.id).where(table.c.user_id == user_id, column.in_(list(wanted)))
        for value, holder in db.session.execute(query):
            if holder != wanted[value] and holder not in leaving:
                clashes.add(wanted[value])
    return clashes


def _undo_table(session: MigrationSession, table_name: str, entries: list[Any], report: dict[str, Any]) -> None:
    model = current_lsmigrate().model_of_table(table_name)
    table = model.__table__
    ids = [entry.target_id for entry in entries]
    columns = (table.c.id, table.c.user_id, table.c.migration_session_id, table.c.source_digest)
    current = {row[0]: tuple(row[1:]) for row in db.session.execute(select(*columns).where(table.c.id.in_(ids)))}
    relied = _relied_on(session, table_name, ids)
    doomed: list[uuid.UUID] = []
    restored: list[dict[str, Any]] = []
    for entry in entries:
        row = current.get(entry.target_id)
        if row is None:
            reason = "missing"
        elif row != (session.user_id, session.id, entry.digest):
            reason = "changed_since"
        elif (entry.target_id, entry.digest) in relied:
            reason = "used_by_another_session"
        else:
            if entry.outcome == "inserted":
                doomed.append(entry.target_id)
            else:
                values = {k: v for k, v in image_values(model, entry.pre_image).items() if k not in ("id", "user_id")}
                restored.append({"b_id": entry.target_id, "b_user": session.user_id, **values})
            continue
        report["skipped"].append(
            {"key": entry.key, "index": entry.index, "table": table_name, "id": str(entry.target_id), "reason": reason}
        )
    clashes = _names_taken(model, session.user_id, restored, set(doomed))
    if clashes:
        for entry in entries:
            if entry.target_id in clashes:
                report["skipped"].append(
                    {
                        "key": entry.key,
                        "index": entry.index,
                        "table": table_name,
                        "id": str(entry.target_id),
                        "reason": "name_taken_since",
                    }
                )
        restored = [values for values in restored if values["b_id"] not in clashes]
    if doomed:
        db.session.execute(delete(table).where(table.c.id.in_(doomed), table.c.user_id == session.user_id))
    if restored:
        mine = (table.c.id == bindparam("b_id")) & (table.c.user_id == bindparam("b_user"))
        db.session.execute(update(table).where(mine), restored)
    for action, rows in (("deleted", doomed), ("restored", restored)):
        if rows:
            report[action][table_name] = len(rows)


def rollback_session(session: MigrationSession) -> dict[str, Any]:
    """Undo `session`'s writes (once); the report of what was deleted, restored and skipped."""
    lock_user(session.user_id)
    db.session.refresh(session)
    if session.status == "rolled_back" and session.rollback_report is not None:
        return session.rollback_report
    now = datetime.now(UTC)
    report: dict[str, Any] = {
        "session_id": str(session.id),
        "status": "rolled_back",
        "dry_run": session.dry_run,
        "deleted": {},
        "restored": {},
        "skipped": [],
        "conflicts_closed": 0,
    }
    if not session.dry_run:
        query = (
            select(LedgerEntry)
            .where(LedgerEntry.session_id == session.id, LedgerEntry.outcome.in_(WRITES))
            .order_by(LedgerEntry.key, LedgerEntry.index)
        )
        by_table: dict[str, list[LedgerEntry]] = defaultdict(list)
        for entry in db.session.scalars(query):
            by_table[entry.target_table].append(entry)  # type: ignore[index]
        for table_name, entries in sorted(by_table.items()):
            _undo_table(session, table_name, entries, report)
    closed = db.session.execute(
        update(MigrationConflict)
        .where(MigrationConflict.session_id == session.id, MigrationConflict.status == "open")
        .values(status="closed", resolution="rolled_back", resolved_at=now)
    )
    report["conflicts_closed"] = closed.rowcount  # type: ignore[attr-defined]
    session.status, session.rolled_back_at, session.rollback_report = "rolled_back", now, report
    user_id = session.user_id
    db.session.commit()
    if any(report["deleted"].values()) or any(report["restored"].values()):
        send_records_changed(user_id)
    return report
