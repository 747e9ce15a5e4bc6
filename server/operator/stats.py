"""The figures an operator watches (`lsmigrate stats`, the operator page): what the database knows, aggregated.

    sessions            non-dry-run sessions by state (open, verified, abandoned, rolled_back); dry runs apart
    records             the ledger's records by outcome, of non-dry-run sessions; `written` = inserted + updated
    quarantine_reasons  the commonest reason codes of quarantined records (records refused or held)
    conflict_kinds      the commonest kinds of conflicts a policy of `ask` stored, with how many are open
    open_conflicts      conflicts waiting for the user's choice
    slowest             the sessions whose opening-to-verification took longest: user, records, seconds

Each figure is one aggregate query (the slowest sessions two: the top sessions, then their record counts),
every list bounded by `limit`; of the records themselves nothing is read but the quarantine's reason codes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, cast, distinct, func, select, true

from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationConflict, MigrationSession, QuarantinedRecord

#: The most rows any list of the figures holds.
MAX_LIMIT = 100
#: Outcomes whose record was written into a row: what the page's chart plots per interval.
WRITTEN = ("inserted", "updated")


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _seconds(start: Any, end: Any) -> ColumnElement[Any]:
    """`end - start` in seconds, in SQL."""
    if _dialect() == "postgresql":
        return func.extract("epoch", end - start)
    return cast((func.julianday(end) - func.julianday(start)) * 86400.0, Float)


def _sessions() -> tuple[dict[str, int], int]:
    """Non-dry-run sessions by state, and how many dry runs there are."""
    query = select(MigrationSession.status, MigrationSession.dry_run, func.count()).group_by(
        MigrationSession.status, MigrationSession.dry_run
    )
    states: dict[str, int] = {}
    dry_runs = 0
    for status, dry_run, n in db.session.execute(query):
        if dry_run:
            dry_runs += n
        else:
            states[status] = n
    return dict(sorted(states.items())), dry_runs


def _records() -> dict[str, int]:
    """The ledger's records of non-dry-run sessions, by outcome."""
    query = (
        select(LedgerEntry.outcome, func.count())
        .join(MigrationSession, MigrationSession.id == LedgerEntry.session_id)
        .where(MigrationSession.dry_run.is_(False))
        .group_by(LedgerEntry.outcome)
    )
    return dict(sorted((outcome, n) for outcome, n in db.session.execute(query)))


def _quarantine_reasons(limit: int) -> list[dict[str, Any]]:
    """The commonest reason codes in the quarantine, with how many quarantined records give each."""
    code: ColumnElement[Any]
    if _dialect() == "postgresql":
        element = func.jsonb_array_elements(QuarantinedRecord.reasons).table_valued("value").render_derived()
        code = element.c.value.op("->>")("code")
    else:
        element = func.json_each(QuarantinedRecord.reasons).table_valued("value")
        code = func.json_extract(element.c.value, "$.code")
    n = func.count(distinct(QuarantinedRecord.id))
    query = (
        select(code.label("code"), n.label("n"))
        .select_from(QuarantinedRecord)
        .join(element, true())
        .group_by(code)
        .order_by(n.desc(), code)
        .limit(limit)
    )
    return [{"code": found, "count": count} for found, count in db.session.execute(query)]


def _conflict_kinds(limit: int) -> tuple[list[dict[str, Any]], int]:
    """The commonest conflict kinds (with how many of each are open), and how many conflicts are open."""
    still_open = func.count().filter(MigrationConflict.status == "open")
    query = (
        select(MigrationConflict.kind, func.count().label("n"), still_open)
        .group_by(MigrationConflict.kind)
        .order_by(func.count().desc(), MigrationConflict.kind)
    )
    rows = db.session.execute(query).all()
    kinds = [{"kind": kind, "count": n, "open": waiting} for kind, n, waiting in rows[:limit]]
    return kinds, sum(waiting for _, _, waiting in rows)


def _slowest(limit: int) -> list[dict[str, Any]]:
    """The non-dry-run sessions that took longest from opening to verification, slowest first."""
    seconds = _seconds(MigrationSession.created_at, MigrationSession.completed_at).label("seconds")
    query = (
        select(MigrationSession.id, MigrationSession.user_id, MigrationSession.status, seconds)
        .where(MigrationSession.completed_at.is_not(None), MigrationSession.dry_run.is_(False))
        .order_by(seconds.desc(), MigrationSession.id)
        .limit(limit)
    )
    top = db.session.execute(query).all()
    if not top:
        return []
    counted = (
        select(LedgerEntry.session_id, func.count())
        .where(LedgerEntry.session_id.in_([row.id for row in top]))
        .group_by(LedgerEntry.session_id)
    )
    records: dict[Any, int] = {session_id: n for session_id, n in db.session.execute(counted)}
    return [
        {
            "session_id": str(row.id),
            "user_id": row.user_id,
            "status": row.status,
            "records": records.get(row.id, 0),
            "seconds": round(float(row.seconds), 3),
        }
        for row in top
    ]


def collect_stats(limit: int = 10) -> dict[str, Any]:
    """The operator's figures (see the module's docstring), each list at most `limit` (1 to MAX_LIMIT) long."""
    if not 0 < limit <= MAX_LIMIT:
        raise ValueError(f"limit is 1 to {MAX_LIMIT}, not {limit}")
    sessions, dry_runs = _sessions()
    records = _records()
    kinds, open_conflicts = _conflict_kinds(limit)
    stats = {
        "generated_at": datetime.now(UTC).isoformat(),
        "sessions": sessions,
        "dry_runs": dry_runs,
        "records": records,
        "written": sum(records.get(outcome, 0) for outcome in WRITTEN),
        "quarantine_reasons": _quarantine_reasons(limit),
        "conflict_kinds": kinds,
        "open_conflicts": open_conflicts,
        "slowest": _slowest(limit),
    }
    return stats
