"""Operator commands: flask --app lsmigrate.server lsmigrate sessions | show SID | rollback SID | token USER_ID |
operator-token NAME | revoke --token TOKEN | --user USER_ID | rotate-keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from lsmigrate.server.api.auth import AUDIENCE, DEMO_AUDIENCE, expiry, issue_token, token_claims
from lsmigrate.server.api.revocation import revoke_token, revoke_user
from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationConflict, MigrationSession
from lsmigrate.server.errors import Unauthorized
from lsmigrate.server.extension import settings
from lsmigrate.server.operator.auth import OPERATOR_AUDIENCE, issue_operator_token
from lsmigrate.server.records.rotation import Rotation, Tally
from lsmigrate.server.records.secrets import secret_box
from lsmigrate.server.sessions import outcome_counts
from lsmigrate.server.sessions.rollback import rollback_session
from lsmigrate.shared.protocol import MAX_USER_ID

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
@click.option("--expires-in", type=click.IntRange(min=1), help="Seconds it is valid (default and most: TOKEN_MAX_AGE).")
def print_token(user_id: str, expires_in: int | None) -> None:
    """Print a bearer token for USER_ID."""
    if not 0 < len(user_id) <= MAX_USER_ID:
        raise click.BadParameter(f"a user id is 1 to {MAX_USER_ID} characters long", param_hint="USER_ID")
    try:
        click.echo(issue_token(user_id, lifetime=expires_in))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--expires-in") from error


@group.command("operator-token")
@click.argument("name")
@click.option("--expires-in", type=click.IntRange(min=1), help="Seconds it is valid (default and most: TOKEN_MAX_AGE).")
def print_operator_token(name: str, expires_in: int | None) -> None:
    """Print a bearer token for operator NAME: /metrics and the operator page take it, the API never does."""
    try:
        click.echo(issue_operator_token(name, expires_in))
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


@group.command("revoke")
@click.option("--token", help="Refuse this bearer token from now until it expires.")
@click.option("--user", "user_id", help="Refuse every token of this user issued until now.")
def revoke(token: str | None, user_id: str | None) -> None:
    """Revoke one bearer token, or every token of a user issued until now (new ones are accepted)."""
    if (token is None) == (user_id is None):
        raise click.UsageError("Give --token TOKEN or --user USER_ID, one of them.")
    if token is not None:
        try:
            claims = token_claims(token, (AUDIENCE, DEMO_AUDIENCE, OPERATOR_AUDIENCE), expired=True)
        except Unauthorized as error:
            raise click.BadParameter(
                f"{error.message} (not signed by any of this server's keys)", param_hint="--token"
            ) from error
        expires = expiry(claims)
        if expires <= datetime.now(UTC):
            click.echo(
                f"token {claims['jti']} of user {claims['sub']} expired at {expires.isoformat()}: nothing to revoke"
            )
            return
        told = revoke_token(claims["sub"], claims["jti"], expires)
        click.echo(
            f"revoked token {claims['jti']} of user {claims['sub']} (it would have expired at {expires.isoformat()})"
        )
    else:
        assert user_id is not None
        if not 0 < len(user_id) <= MAX_USER_ID:
            raise click.BadParameter(f"a user id is 1 to {MAX_USER_ID} characters long", param_hint="--user")
        moment, told = revoke_user(user_id)
        click.echo(f"revoked every token of user {user_id} issued before {moment.isoformat()}")
    if not told:
        raise click.ClickException(
            "Redis could not be reached: the revocation is in the database, but an instance may still accept the "
            f"token from its cached answer for up to CACHE_TTL_SECONDS ({settings()['CACHE_TTL_SECONDS']} s). "
            "Run this command again once Redis answers."
        )


@group.command("rotate-keys")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1), help="Rows per transaction.")
def rotate_keys(batch_size: int) -> None:
    """Re-encrypt every stored secret under the newest encryption key; print what was done, by place."""
    tallies = Rotation(secret_box(), batch_size).run()
    total = Tally(*(sum(vars(tally)[name] for tally in tallies.values()) for name in vars(Tally())))
    rows = [(place, t.rotated, t.current, t.unreadable) for place, t in tallies.items()]
    _table(("WHERE", "RE-ENCRYPTED", "ALREADY NEWEST", "UNREADABLE"), [*rows, ("total", *vars(total).values())])
    if total.unreadable:
        raise click.ClickException(
            f"{total.unreadable} stored secret(s) could not be decrypted with any key (each is named in the log): "
            "they were left as they are. Keep every older key in LSMIGRATE_ENCRYPTION_KEYS until they are dealt with."
        )


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
