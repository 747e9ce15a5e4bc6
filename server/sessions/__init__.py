"""Migration sessions: opening (or resuming) one, finding one for its user, describing it.

Opening and finding are here; what ends a session is beside it: `verify` (completing it against
the client's manifest), `conflicts` (resolving what a policy of `ask` left open), `rollback`.

One user has at most one open session at a time (dry runs aside), so two tabs
or devices never interleave their batches. The database enforces it: the
partial unique index `uq_sessions_one_open_per_user` refuses a second open
row, whatever process tries. The rules of `open_session`:

- the same client session id gets its session back (resumed, with its
  acknowledged batches); an abandoned one is reopened if the user has no
  other open session, its conflicts closed by the abandonment open again;
- another client session id while a session is open is 409 `session_active`
  (the open session's id in the details), unless that session has been idle
  (no batch, no resume) for more than SESSION_IDLE_SECONDS (default 900):
  it is then marked `abandoned`, its open conflicts closed, and the new one
  opens;
- asking for a dry run under the id of a real session, or the reverse, is
  409 `dry_run_mismatch`.

Every transaction that writes a user's migrated rows first takes that user's
lock (`lock_user`), so batches, conflict resolutions and rollbacks of one
user run one after the other and each decides on what it reads; the same
call advances the user's data version in that transaction (see
lsmigrate.server.signals), so no cached copy of the rows outlives it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from lsmigrate.server.db import db
from lsmigrate.server.db.models import LedgerEntry, MigrationBatch, MigrationConflict, MigrationSession
from lsmigrate.server.errors import Conflict, Forbidden, NotFound
from lsmigrate.server.extension import settings
from lsmigrate.server.signals import advance_data_version
from lsmigrate.shared.protocol import PROTOCOL_VERSION


def durable() -> None:
    """Make the current transaction's commit durable whatever the database's default: the page deletes what a
    commit says is on the server, so a commit lost with `synchronous_commit = off` would lose data (PostgreSQL;
    SQLite's commit is durable). Its statements are cancelled past STATEMENT_TIMEOUT_SECONDS (a 503 the client
    retries, never a worker killed by gunicorn's time-out). Transaction-scoped (`set_config(..., true)`, as
    SET LOCAL): nothing outlives it, through a pooler too."""
    if db.session.get_bind().dialect.name == "postgresql":
        timeout = f"{settings()['STATEMENT_TIMEOUT_SECONDS'] * 1000}ms"
        db.session.execute(
            text("SELECT set_config('synchronous_commit', 'on', true), set_config('statement_timeout', :t, true)"),
            {"t": timeout},
        )


def lock_user(user_id: str, *, changes_rows: bool = True, wait: bool = True) -> bool:
    """Take `user_id`'s write lock until the transaction ends (PostgreSQL; SQLite serialises writers itself),
    make the transaction's commit durable (`durable`), and advance the user's data version in it (what decides
    whether a cached copy of the rows is fresh: `advance_data_version`) unless `changes_rows` is False.

    With `wait` False the lock is only tried: False (and nothing done) when another transaction holds it.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        durable()
        material = hashlib.sha256(b"lsmigrate user\n" + user_id.encode("utf-8")).digest()
        key = int.from_bytes(material[:8], signed=True)
        if wait:
            db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        elif not db.session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}):
            return False
    if changes_rows:
        # After the lock, so that lsmigrate's transactions queue on the lock, not on the version's row.
        advance_data_version(user_id)
    return True


def _open_session_of(user_id: str) -> MigrationSession | None:
    query = select(MigrationSession).filter_by(user_id=user_id, status="open", dry_run=False)
    return db.session.scalars(query).one_or_none()


def _session_active(active: MigrationSession | None) -> Conflict:
    details = None if active is None else {"session_id": str(active.id)}
    return Conflict(
        "Another migration session of this user is open; finish it or wait until it is idle.",
        code="session_active",
        details=details,
    )


def _make_room(user_id: str, resuming: uuid.UUID | None, now: datetime) -> None:
    """Abandon the user's open session if it is idle; session_active if it is not."""
    active = _open_session_of(user_id)
    if active is None or active.id == resuming:
        return
    idle = (now - active.last_active_at).total_seconds()
    if idle <= settings()["SESSION_IDLE_SECONDS"]:
        raise _session_active(active)
    active.status = "abandoned"
    db.session.execute(
        update(MigrationConflict)
        .where(
            MigrationConflict.user_id == active.user_id,
            MigrationConflict.session_id == active.id,
            MigrationConflict.status == "open",
        )
        .values(status="closed", resolution="abandoned", resolved_at=now)
    )
    db.session.flush()  # the index must see it closed before the new session is inserted


def open_session(user_id: str, client_session_id: str, dry_run: bool = False) -> tuple[MigrationSession, bool]:
    """The user's session for `client_session_id`, created if new; True when created."""
    query = select(MigrationSession).filter_by(user_id=user_id, client_session_id=client_session_id)
    lock_user(user_id, changes_rows=False)  # a session's rows change in its batches, not here
    now = datetime.now(UTC)
    session = db.session.scalars(query).one_or_none()
    created = session is None
    if session is None:
        if not dry_run:
            _make_room(user_id, None, now)
        session = MigrationSession(
            user_id=user_id,
            client_session_id=client_session_id,
            status="open",
            dry_run=dry_run,
            created_at=now,
            last_active_at=now,
        )
        db.session.add(session)
    else:
        if session.dry_run != dry_run:
            raise Conflict(
                "This client session id names a session of the other kind (dry run or not).",
                code="dry_run_mismatch",
                details={"session_id": str(session.id), "dry_run": session.dry_run},
            )
        if session.status == "abandoned" and not dry_run:
            _make_room(user_id, session.id, now)
            session.status = "open"
            # Its conflicts were closed only because it was idle: open again, to be resolved as before.
            db.session.execute(
                update(MigrationConflict)
                .where(
                    MigrationConflict.user_id == session.user_id,
                    MigrationConflict.session_id == session.id,
                    MigrationConflict.status == "closed",
                    MigrationConflict.resolution == "abandoned",
                )
                .values(status="open", resolution=None, resolved_at=None)
            )
        if session.status == "open":
            session.last_active_at = now
    try:
        db.session.commit()
    except IntegrityError as error:
        # Without the user lock (SQLite) a concurrent request may have won: the unique indexes decide.
        db.session.rollback()
        found = db.session.scalars(query).one_or_none()
        if found is not None and found.dry_run == dry_run and found.status == "open":
            return found, False
        raise _session_active(_open_session_of(user_id)) from error
    return session, created


def find_session(user_id: str, session_id: str) -> MigrationSession:
    """The session `session_id` of `user_id`: NotFound if there is none, Forbidden if not theirs."""
    try:
        key = uuid.UUID(session_id)
    except ValueError as error:
        raise NotFound(f"No migration session {session_id!r}.", code="unknown_session") from error
    session = db.session.scalars(select(MigrationSession).filter_by(user_id=user_id, id=key)).one_or_none()
    if session is not None:
        return session
    # Not the user's: someone else's (403, so a page that signed in as another user says so) or none at all.
    if db.session.scalar(select(func.count()).select_from(MigrationSession).filter_by(id=key)):
        raise Forbidden("This migration session belongs to another user.", code="foreign_session")
    raise NotFound(f"No migration session {session_id!r}.", code="unknown_session")


def session_by_id(session_id: str) -> MigrationSession | None:
    """An operator's lookup of a session by its id alone, whoever's it is (on tables distributed by user, the one
    query that asks every node: operators' tools only; the API always knows its user, `find_session`)."""
    try:
        key = uuid.UUID(session_id)
    except ValueError:
        return None
    return db.session.scalars(select(MigrationSession).filter_by(id=key)).one_or_none()


def outcome_counts(session: MigrationSession) -> dict[str, dict[str, int]]:
    """Per localStorage key, how many of the session's records had each outcome."""
    query = (
        select(LedgerEntry.key, LedgerEntry.outcome, func.count())
        .where(LedgerEntry.user_id == session.user_id, LedgerEntry.session_id == session.id)
        .group_by(LedgerEntry.key, LedgerEntry.outcome)
    )
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for key, outcome, n in db.session.execute(query):
        counts[key][outcome] = n
    return {key: dict(sorted(per_key.items())) for key, per_key in sorted(counts.items())}


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def describe_session(session: MigrationSession) -> dict[str, Any]:
    """The session as the protocol returns it: status, acknowledged batches, per-key counts, open conflicts."""
    acknowledged = db.session.scalars(
        select(MigrationBatch.seq)
        .filter_by(user_id=session.user_id, session_id=session.id)
        .order_by(MigrationBatch.seq)
    ).all()
    open_conflicts = db.session.scalar(
        select(func.count())
        .select_from(MigrationConflict)
        .filter_by(user_id=session.user_id, session_id=session.id, status="open")
    )
    return {
        "session_id": str(session.id),
        "client_session_id": session.client_session_id,
        "user_id": session.user_id,
        "status": session.status,
        "dry_run": session.dry_run,
        "created_at": session.created_at.isoformat(),
        "last_active_at": session.last_active_at.isoformat(),
        "completed_at": _moment(session.completed_at),
        "rolled_back_at": _moment(session.rolled_back_at),
        "acknowledged_batches": list(acknowledged),
        "counts": outcome_counts(session),
        "open_conflicts": open_conflicts or 0,
        "protocol_version": PROTOCOL_VERSION,
    }
