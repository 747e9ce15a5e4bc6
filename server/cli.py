"""Operator commands: flask --app lsmigrate.server lsmigrate sessions | show SID | rollback SID | token USER_ID."""

from __future__ import annotations

import uuid
from typing import Any

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from lsmigrate.server.api.auth import issue_token
from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationConflict, MigrationSession
from lsmigrate.server.sessions import outcome_counts
from lsmigrate.server.sessions.rollback import rollback_session

group = AppGroup("lsmigrate", help="lsmigrate operator commands.")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [tuple(header)] + [tuple("" if value is None else str(value) for value in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


def _session(sid: str) -> MigrationSession:
    try:
        session = db.session.get(MigrationSession, uuid.UUID(sid))
    except ValueError:
        session = None
    if session is None:
        raise click.ClickException(f"no migration session {sid}")
    return session


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{outcome} {n}" for outcome, n in sorted(counts.items())) or "-"


@group.command("token")
@click.argument("user_id")
def print_token(user_id: str) -> None:
    """Print a bearer token for USER_ID."""
    try:
        click.echo(issue_token(user_id))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="USER_ID") from error


@group.command("sessions")
@click.option("--user", "user_id", help="Only this user's sessions.")
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
def list_sessions(user_id: str | None, limit: int) -> None:
    """List migration sessions: id, user, status, dry run, created, record outcomes."""
    query = select(MigrationSession).order_by(MigrationSession.created_at.desc()).limit(limit)
    if user_id is not None:
        query = query.where(MigrationSession.user_id == user_id)
    sessions = list(db.session.scalars(query))
    totals: dict[uuid.UUID, dict[str, int]] = {session.id: {} for session in sessions}
    tally = (
        select(LedgerEntry.session_id, LedgerEntry.outcome, func.count())
        .where(LedgerEntry.session_id.in_(list(totals)))
        .group_by(LedgerEntry.session_id, LedgerEntry.outcome)
    )
    for session_id, outcome, n in db.session.execute(tally):
        totals[session_id][outcome] = n
    rows = [
        (
            session.id,
            session.user_id,
            session.status,
            "yes" if session.dry_run else "no",
            session.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            _summary(totals[session.id]),
        )
        for session in sessions
    ]
    _table(("ID", "USER", "STATUS", "DRY RUN", "CREATED (UTC)", "RECORDS"), rows)


@group.command("show")
@click.argument("sid")
def show_session(sid: str) -> None:
    """Show session SID: its state, per-key outcomes and open conflicts."""
    session = _session(sid)
    for label, value in (
        ("session", session.id),
        ("user", session.user_id),
        ("client session", session.client_session_id),
        ("status", session.status),
        ("dry run", "yes" if session.dry_run else "no"),
        ("created", session.created_at.isoformat()),
        ("last active", session.last_active_at.isoformat()),
        ("completed", session.completed_at and session.completed_at.isoformat()),
        ("rolled back", session.rolled_back_at and session.rolled_back_at.isoformat()),
    ):
        click.echo(f"{label + ':':16}{'-' if value is None else value}")
    click.echo("")
    _table(("KEY", "RECORDS"), [(key, _summary(counts)) for key, counts in outcome_counts(session.id).items()])
    conflicts = db.session.scalars(
        select(MigrationConflict)
        .where(MigrationConflict.session_id == session.id, MigrationConflict.status == "open")
        .order_by(MigrationConflict.key, MigrationConflict.index)
    ).all()
    click.echo(f"\nopen conflicts: {len(conflicts)}")
    if conflicts:
        _table(
            ("CONFLICT", "KEY", "INDEX", "KIND", "TABLE", "ROW"),
            [(c.id, c.key, c.index, c.kind, c.target_table, c.target_id) for c in conflicts],
        )


@group.command("rollback")
@click.argument("sid")
def rollback(sid: str) -> None:
    """Undo session SID on the server; print what was deleted, restored and skipped."""
    report = rollback_session(_session(sid))
    click.echo(
        f"session {report['session_id']} rolled back{' (dry run: nothing was written)' if report['dry_run'] else ''}"
    )
    for action in ("deleted", "restored"):
        for table, n in sorted(report[action].items()):
            click.echo(f"{action}: {n} {table}")
    for skip in report["skipped"]:
        click.echo(f"skipped: {skip['table']} {skip['id']} ({skip['key']} #{skip['index']}): {skip['reason']}")
    click.echo(f"conflicts closed: {report['conflicts_closed']}")
