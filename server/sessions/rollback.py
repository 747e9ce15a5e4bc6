"""Undoing a session on the server (design §1.4, §12): what it wrote taken back, nothing anyone changed since.

Each row lsmigrate writes has a history in the ledger: the writes of the
sessions that inserted or updated it, in the order they reached it, each with
the digest of the row before (`pre_digest`, with its `pre_image`) and after
(`row_digest`). A session that found the row `unchanged` or kept the server's
version relied on the row as it was then (its `row_digest`): its records
exist only as that row.

Rolling a session back takes its writes out of the history of every row it
wrote or relied on, and puts each such row back to what the remaining history
says, walking back from the newest write:

- a write of a session still standing (not rolled back) stays, and so does a
  row another standing session relied on: the walk stops there;
- a write of a rolled-back session is taken back: the row returns to its
  pre-image, or is deleted when that write inserted it; the walk goes on to
  the write before only when its pre-image is exactly what that write left
  (no one changed the row in between), otherwise the row keeps the pre-image;
- a row that is no longer what lsmigrate last left it (the app, an operator
  or a script changed or deleted it) is left as it is, and so is a row whose
  pre-image's name (an environment's) another row has taken since.

So rolling sessions back in any order ends in the same rows, and a rollback
asked for later can always finish what an earlier one had to leave: a row
written by a session that another one overwrote afterwards is taken back when
that later one is rolled back too. What is taken back is marked in the
ledger (`undone_at`, and `undone_digest`: the row as the rollback left it),
which is what the next rollback compares the row with.

Each of the session's own writes not taken back is reported as skipped with
its reason: `changed_since` (changed by someone else since lsmigrate wrote it),
`missing` (deleted since), `changed_since` with `by_session` (a later session
still standing wrote it: rolling that one back takes this write back too),
`used_by_another_session` (a standing session relied on it) or
`name_taken_since`. Rows go, then pre-images come back, in one transaction;
the user's cached records are invalidated. The session's open conflicts are
closed; its ledger and quarantine stay, as the audit trail.

The session ends `rolled_back` with the report stored, and who asked
(`rolled_back_by`): asking again answers the same report and changes nothing.
A dry run wrote no rows: its rollback only closes it. A session `lsmigrate
prune` has pruned (its pre-images cleared) is refused: 409 `session_pruned`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update

from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationConflict, MigrationSession
from lsmigrate.server.db.sql import among
from lsmigrate.server.errors import Conflict
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.records.digests import row_digests
from lsmigrate.server.records.rows import image_values, unique_per_user
from lsmigrate.server.sessions import lock_user
from lsmigrate.server.signals import send_records_changed

WRITES = ("inserted", "updated")
#: The walk stopped at a write of a session still standing: reported as `changed_since`, naming that session.
LATER = "written_by_later_session"
RELIANCES = ("unchanged", "kept_server")


@dataclass
class _Write:
    """One write of a row: a ledger entry of outcome inserted or updated."""

    session_id: uuid.UUID
    key: str
    index: int
    outcome: str
    digest: str  # the source record's
    row_digest: str | None
    pre_digest: str | None
    pre_image: dict[str, Any] | None
    undone: bool
    undone_digest: str | None
    standing: bool  # its session is not rolled back


@dataclass
class _Row:
    """What rollback knows of one row: its writes in order, the states standing sessions rely on, its state now."""

    writes: list[_Write] = field(default_factory=list)
    relied: set[str] = field(default_factory=set)  # row digests; a legacy entry's source digest as "source:…"
    current: str | None = None  # the row's digest now; None: the row is not there
    holder: tuple[uuid.UUID | None, str] | None = None  # (migration_session_id, source_digest) now


@dataclass
class _Undo:
    """What the walk decided for one row: the writes taken back and the pre-image the row returns to."""

    taken: list[_Write]
    image: dict[str, Any] | None  # None: delete the row
    marked: list[_Write]  # the writes from the oldest taken back to the newest: all undone from now on


def _histories(session: MigrationSession, model: Any, ids: list[uuid.UUID]) -> dict[uuid.UUID, _Row]:
    """The history of each row: every write of the user's sessions (dry runs wrote nothing), and reliances."""
    table_name = model.__tablename__
    rows: dict[uuid.UUID, _Row] = defaultdict(_Row)
    order = func.coalesce(LedgerEntry.written_at, MigrationSession.created_at)
    query = (
        select(LedgerEntry, MigrationSession.status)
        .join(MigrationSession, MigrationSession.id == LedgerEntry.session_id)
        .where(
            among(LedgerEntry.target_id, ids),
            LedgerEntry.target_table == table_name,
            LedgerEntry.outcome.in_(WRITES + RELIANCES),
            MigrationSession.user_id == session.user_id,
            MigrationSession.dry_run.is_(False),
        )
        .order_by(order, MigrationSession.created_at, LedgerEntry.batch_seq, LedgerEntry.key, LedgerEntry.index)
    )
    for entry, status in db.session.execute(query):
        row = rows[entry.target_id]  # type: ignore[index]  # the query asked for targets
        standing = status != "rolled_back" and entry.session_id != session.id
        if entry.outcome in RELIANCES:
            if standing:
                row.relied.add(entry.row_digest if entry.row_digest is not None else f"source:{entry.digest}")
            continue
        row.writes.append(
            _Write(
                entry.session_id,
                entry.key,
                entry.index,
                entry.outcome,
                entry.digest,
                entry.row_digest,
                entry.pre_digest,
                entry.pre_image,
                entry.undone_at is not None,
                entry.undone_digest,
                standing,
            )
        )
    table = model.__table__
    for row_id, digest in row_digests(model, session.user_id, ids).items():
        rows[row_id].current = digest
    holders = select(table.c.id, table.c.migration_session_id, table.c.source_digest).where(
        among(table.c.id, ids), table.c.user_id == session.user_id
    )
    for row_id, writer, source in db.session.execute(holders):
        rows[row_id].holder = (writer, source)
    return rows


def _left(row: _Row, write: _Write, state: str | None, first: bool) -> bool:
    """Whether the row in `state` is exactly what `write` left (a write before digests: by its session and
    source digest, which only the row as it is now can show)."""
    if write.row_digest is not None:
        return state == write.row_digest
    return first and row.holder == (write.session_id, write.digest)


def _stands(row: _Row, write: _Write) -> str | None:
    """Why `write` must stay, if it must: its session stands, or a standing session relied on what it left."""
    if write.standing:
        return LATER
    if (write.row_digest or f"source:{write.digest}") in row.relied:
        return "used_by_another_session"
    return None


def _walk(row: _Row) -> tuple[_Undo | None, str | None, _Write | None]:
    """The writes to take back from the newest down, why the walk stopped (a skip reason, or None) and where."""
    if not row.writes:
        return None, None, None
    top = row.writes[-1]
    if top.undone:
        if top.undone_digest != row.current:
            return None, "missing" if row.current is None else "changed_since", None
    elif not _left(row, top, row.current, True):
        return None, "missing" if row.current is None else "changed_since", None
    state, first, taken = row.current, True, []
    reason: str | None = None
    stop: _Write | None = None
    for write in reversed(row.writes):
        if write.undone:
            continue
        if not _left(row, write, state, first):
            reason = "changed_since"
            break
        reason = _stands(row, write)
        if reason is not None:
            stop = write
            break
        if write.outcome == "updated" and write.pre_image is None:  # nothing to put back: leave the row be
            reason = "changed_since"
            break
        taken.append(write)
        first = False
        if write.outcome == "inserted":
            state = None
        elif write.pre_digest is None:  # a write before digests: its pre-image cannot be compared further
            reason = "changed_since"
            break
        else:
            state = write.pre_digest
    if not taken:
        return None, reason, stop
    last = taken[-1]
    marked = row.writes[row.writes.index(last) :]
    return _Undo(taken, None if last.outcome == "inserted" else last.pre_image, marked), reason, stop


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


def _mark_undone(marks: list[dict[str, Any]]) -> None:
    """Ledger entries taken back: `undone_at`, and `undone_digest` (the row as the rollback left it)."""
    if not marks:
        return
    ledger = LedgerEntry.__table__
    one = (
        (ledger.c.user_id == bindparam("b_user"))
        & (ledger.c.session_id == bindparam("b_session"))
        & (ledger.c.key == bindparam("b_key"))
        & (ledger.c.index == bindparam("b_index"))
    )
    values: dict[str, Any] = {"undone_at": bindparam("b_at"), "undone_digest": bindparam("b_digest")}
    db.session.execute(update(ledger).where(one).values(values), marks)


def _undo_table(
    session: MigrationSession, table_name: str, entries: list[LedgerEntry], report: dict[str, Any], now: datetime
) -> None:
    model = current_lsmigrate().model_of_table(table_name)
    table = model.__table__
    ids = sorted({entry.target_id for entry in entries if entry.target_id is not None})
    rows = _histories(session, model, ids)
    undos: dict[uuid.UUID, _Undo] = {}
    reasons: dict[uuid.UUID, str | None] = {}
    stops: dict[uuid.UUID, _Write | None] = {}
    for row_id in ids:
        undo, reasons[row_id], stops[row_id] = _walk(rows[row_id])
        if undo is not None:
            undos[row_id] = undo
    doomed = [row_id for row_id, undo in undos.items() if undo.image is None]
    restored = [
        {
            "b_id": row_id,
            "b_user": session.user_id,
            **{k: v for k, v in image_values(model, undo.image).items() if k not in ("id", "user_id")},
        }
        for row_id, undo in undos.items()
        if undo.image is not None
    ]
    for row_id in _names_taken(model, session.user_id, restored, set(doomed)):
        del undos[row_id]
        reasons[row_id] = "name_taken_since"
    restored = [values for values in restored if values["b_id"] in undos]
    if doomed:
        db.session.execute(delete(table).where(among(table.c.id, doomed), table.c.user_id == session.user_id))
    if restored:
        mine = (table.c.id == bindparam("b_id")) & (table.c.user_id == bindparam("b_user"))
        db.session.execute(update(table).where(mine), restored)
    left = row_digests(model, session.user_id, [values["b_id"] for values in restored])
    _mark_undone(
        [
            {
                "b_user": session.user_id,
                "b_session": write.session_id,
                "b_key": write.key,
                "b_index": write.index,
                "b_at": now,
                "b_digest": left.get(row_id),
            }
            for row_id, undo in undos.items()
            for write in undo.marked
        ]
    )
    for action, count in (("deleted", len(doomed)), ("restored", len(restored))):
        if count:
            report[action][table_name] = count
    for entry in entries:
        if entry.outcome not in WRITES or entry.target_id is None:
            continue
        undo = undos.get(entry.target_id)
        if undo is not None and any(write.session_id == session.id for write in undo.taken):
            continue
        skip = {"key": entry.key, "index": entry.index, "table": table_name, "id": str(entry.target_id)}
        reason, stop = reasons.get(entry.target_id) or "changed_since", stops.get(entry.target_id)
        if reason == LATER and stop is not None:
            reason, skip["by_session"] = "changed_since", str(stop.session_id)
        report["skipped"].append(skip | {"reason": reason})


def rollback_session(session: MigrationSession, actor: str | None = None) -> dict[str, Any]:
    """Undo `session`'s writes (once) on behalf of `actor` ("user:<id>", "cli", "operator:<name>": the audit
    trail's); the report of what was deleted, restored and skipped. Conflict (`session_pruned`) for a session
    `lsmigrate prune` has cleared the pre-images of."""
    lock_user(session.user_id)
    # Locked: `prune` marks a session pruned with an UPDATE, so the two never interleave.
    db.session.refresh(session, with_for_update=True)
    if session.status == "rolled_back" and session.rollback_report is not None:
        return session.rollback_report
    if session.pruned_at is not None:
        details = {"session_id": str(session.id), "pruned_at": session.pruned_at.isoformat()}
        db.session.rollback()  # the user's lock and the session's row, let go at once
        raise Conflict(
            "This session was pruned (its pre-images and stored answers are gone): it can no longer be rolled back.",
            code="session_pruned",
            details=details,
        )
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
            .where(LedgerEntry.session_id == session.id, LedgerEntry.outcome.in_(WRITES + RELIANCES))
            .order_by(LedgerEntry.key, LedgerEntry.index)
        )
        by_table: dict[str, list[LedgerEntry]] = defaultdict(list)
        for entry in db.session.scalars(query):
            by_table[entry.target_table].append(entry)  # type: ignore[index]
        for table_name, entries in sorted(by_table.items()):
            _undo_table(session, table_name, entries, report, now)
    closed = db.session.execute(
        update(MigrationConflict)
        .where(
            MigrationConflict.user_id == session.user_id,
            MigrationConflict.session_id == session.id,
            MigrationConflict.status == "open",
        )
        .values(status="closed", resolution="rolled_back", resolved_at=now, resolved_by=actor)
    )
    report["conflicts_closed"] = closed.rowcount  # type: ignore[attr-defined]
    session.status, session.rolled_back_at, session.rollback_report = "rolled_back", now, report
    session.rolled_back_by = actor
    user_id = session.user_id
    db.session.commit()
    if any(report["deleted"].values()) or any(report["restored"].values()):
        send_records_changed(user_id)
    return report
