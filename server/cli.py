"""Operator commands: flask --app lsmigrate.server lsmigrate sessions | show SID | rollback SID | token USER_ID |
operator-token NAME | revoke --token TOKEN | --user USER_ID | rotate-keys | stats [--json] |
prune --older-than AGE [--batch-size N] [--dry-run]."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask.cli import AppGroup
from sqlalchemy import select

from lsmigrate.server.api.auth import AUDIENCE, DEMO_AUDIENCE, expiry, issue_token, token_claims
from lsmigrate.server.api.revocation import revoke_token, revoke_user
from lsmigrate.server.db import db
from lsmigrate.server.db.models import MigrationConflict, MigrationSession
from lsmigrate.server.errors import ApiError, Unauthorized
from lsmigrate.server.extension import settings
from lsmigrate.server.operator.audit import recent_sessions, session_audit
from lsmigrate.server.operator.auth import OPERATOR_AUDIENCE, issue_operator_token
from lsmigrate.server.operator.prune import prune
from lsmigrate.server.operator.stats import MAX_LIMIT, collect_stats
from lsmigrate.server.records.rotation import Rotation, Tally
from lsmigrate.server.records.secrets import secret_box
from lsmigrate.server.sessions import outcome_counts, session_by_id
from lsmigrate.server.sessions.rollback import rollback_session
from lsmigrate.shared.protocol import MAX_USER_ID

group = AppGroup("lsmigrate", help="lsmigrate operator commands.")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [tuple(header)] + [tuple("" if value is None else str(value) for value in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


def _session(sid: str) -> MigrationSession:
    session = session_by_id(sid)
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
    rows = [
        (
            session["session_id"],
            session["user_id"],
            session["status"],
            "yes" if session["dry_run"] else "no",
            datetime.fromisoformat(session["created_at"]).strftime("%Y-%m-%d %H:%M:%S"),
            _summary(session["records"]),
        )
        for session in recent_sessions(limit, user_id)
    ]
    _table(("ID", "USER", "STATUS", "DRY RUN", "CREATED (UTC)", "RECORDS"), rows)


@group.command("show")
@click.argument("sid")
def show_session(sid: str) -> None:
    """Show session SID: its state, per-key outcomes, open conflicts and audit trail (who did what, when)."""
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
    _table(("KEY", "RECORDS"), [(key, _summary(counts)) for key, counts in outcome_counts(session).items()])
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
    trail = session_audit(session)
    click.echo(f"\naudit trail: {len(trail['events'])} events")
    _table(
        ("AT (UTC)", "ACTOR", "ACTION", "DETAILS"),
        [(event["at"], event["actor"], event["action"], _event_text(event)) for event in trail["events"]],
    )


def _event_text(event: dict[str, Any]) -> str:
    """One line of what an audit event says (`operator.audit`)."""
    details, action = event["details"], event["action"]
    if action == "session_opened":
        return f"client session {details['client_session_id']}" + (", dry run" if details["dry_run"] else "")
    if action == "batch_received":
        stores = f" ({', '.join(details['stores'])})" if details["stores"] else ""
        pruned = "; per-record results pruned" if details["results_pruned"] else ""
        return f"batch {details['seq']} of {details['key']}{stores}: {_summary(details['counts'])}{pruned}"
    if action in ("conflict_opened", "conflict_resolved", "conflict_closed"):
        what = details.get("kind") or details.get("resolution")
        return f"{details['key']} #{details['index']}: {what} (conflict {details['conflict_id']})"
    if action == "session_rolled_back":
        done = [f"{name} {_summary(details[name])}" for name in ("deleted", "restored") if details[name]]
        return "; ".join([*done, f"skipped {details['skipped']}", f"conflicts closed {details['conflicts_closed']}"])
    return ""


@group.command("rollback")
@click.argument("sid")
def rollback(sid: str) -> None:
    """Undo session SID on the server; print what was deleted, restored and skipped."""
    try:
        report = rollback_session(_session(sid), actor="cli")
    except ApiError as error:  # session_pruned
        raise click.ClickException(f"{error.message} ({error.code})") from error
    click.echo(
        f"session {report['session_id']} rolled back{' (dry run: nothing was written)' if report['dry_run'] else ''}"
    )
    for action in ("deleted", "restored"):
        for table, n in sorted(report[action].items()):
            click.echo(f"{action}: {n} {table}")
    for skip in report["skipped"]:
        click.echo(f"skipped: {skip['table']} {skip['id']} ({skip['key']} #{skip['index']}): {skip['reason']}")
    click.echo(f"conflicts closed: {report['conflicts_closed']}")


@group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, MAX_LIMIT), help="Rows per list.")
def stats(as_json: bool, limit: int) -> None:
    """Print the figures to watch: sessions by state, records by outcome, top reasons, slowest sessions."""
    figures = collect_stats(limit)
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo(f"sessions by state (dry runs apart: {figures['dry_runs']})")
    _table(("STATE", "SESSIONS"), list(figures["sessions"].items()))
    click.echo(f"\nrecords by outcome (written: {figures['written']})")
    _table(("OUTCOME", "RECORDS"), list(figures["records"].items()))
    click.echo("\ntop quarantine reasons")
    _table(("REASON", "RECORDS"), [(row["code"], row["count"]) for row in figures["quarantine_reasons"]])
    click.echo(f"\nconflict kinds (open conflicts: {figures['open_conflicts']})")
    _table(
        ("KIND", "CONFLICTS", "OPEN"), [(row["kind"], row["count"], row["open"]) for row in figures["conflict_kinds"]]
    )
    click.echo("\nslowest sessions (opened to verified)")
    _table(
        ("SESSION", "USER", "STATUS", "RECORDS", "SECONDS"),
        [
            (row["session_id"], row["user_id"], row["status"], row["records"], row["seconds"])
            for row in figures["slowest"]
        ],
    )


class Age(click.ParamType):
    """A duration as `<n>d`, `<n>h` or `<n>m` (days, hours, minutes), n a whole number above 0."""

    name = "age"
    _FORM = re.compile(r"([1-9][0-9]*)([dhm])")
    _UNITS = {"d": "days", "h": "hours", "m": "minutes"}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = self._FORM.fullmatch(value) if isinstance(value, str) else None
        expected = "expected <n>d, <n>h or <n>m (days, hours or minutes, n a whole number above 0, e.g. 90d)"
        if match is None:
            self.fail(f"{expected}, not {value!r}", param, ctx)
        try:
            age = timedelta(**{self._UNITS[match[2]]: int(match[1])})
            datetime.now(UTC) - age
        except OverflowError:
            self.fail(f"{value!r} reaches back before the year 1: {expected}", param, ctx)
        return age


@group.command("prune")
@click.option("--older-than", "older_than", type=Age(), required=True, help="e.g. 90d, 36h, 30m.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1), help="Rows per transaction.")
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
def prune_sessions(older_than: timedelta, batch_size: int, dry_run: bool) -> None:
    """Clear stored batch responses, ledger pre-images and quarantine entries of sessions verified or rolled
    back longer ago than --older-than; newer sessions are not touched, so their rollback keeps working."""
    report = prune(older_than, batch_size, dry_run=dry_run)
    cutoff = report.cutoff.strftime("%Y-%m-%d %H:%M:%S UTC")
    verb = "would prune" if dry_run else "pruned"
    click.echo(f"{verb}: {report.sessions} sessions verified or rolled back before {cutoff}")
    _table(
        ("WHAT", "WOULD GO" if dry_run else "CLEARED"),
        [
            ("stored batch responses (per-record results)", report.responses),
            ("ledger pre-images", report.pre_images),
            ("quarantine entries", report.quarantine),
        ],
    )
    if report.pre_images_kept:
        click.echo(
            f"kept: {report.pre_images_kept} pre-images of rolled-back sessions' writes a later rollback may "
            "still take back"
        )
    click.echo(f"kept: {report.kept_sessions} sessions newer than {cutoff} (or open), their rollback still works")
    click.echo("pruned sessions can no longer be rolled back")
    if dry_run:
        click.echo("dry run: nothing was changed")
    else:
        click.echo(f"transactions: {report.transactions} (at most {batch_size} rows each)")
