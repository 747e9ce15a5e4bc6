"""Migration sessions: opening (or resuming) one, and finding one for its user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lsmigrate.server.errors import Forbidden, NotFound
from lsmigrate.server.extensions import db
from lsmigrate.server.models import MigrationBatch, MigrationSession
from lsmigrate.shared.protocol import PROTOCOL_VERSION


def open_session(user_id: str, client_session_id: str) -> tuple[MigrationSession, bool]:
    """The user's session for `client_session_id`, created if new; True when created."""
    query = select(MigrationSession).filter_by(user_id=user_id, client_session_id=client_session_id)
    found = db.session.scalars(query).one_or_none()
    if found is not None:
        return found, False
    session = MigrationSession(
        user_id=user_id, client_session_id=client_session_id, status="open", created_at=datetime.now(UTC)
    )
    db.session.add(session)
    try:
        db.session.commit()
    except IntegrityError:
        # Another request opened the same client session first: return that one.
        db.session.rollback()
        return db.session.scalars(query).one(), False
    return session, True


def find_session(user_id: str, session_id: str) -> MigrationSession:
    """The session `session_id` of `user_id`: NotFound if there is none, Forbidden if not theirs."""
    try:
        key = uuid.UUID(session_id)
    except ValueError as error:
        raise NotFound(f"No migration session {session_id!r}.", code="unknown_session") from error
    session = db.session.get(MigrationSession, key)
    if session is None:
        raise NotFound(f"No migration session {session_id!r}.", code="unknown_session")
    if session.user_id != user_id:
        raise Forbidden("This migration session belongs to another user.", code="foreign_session")
    return session


def describe_session(session: MigrationSession) -> dict[str, Any]:
    """The session as the protocol returns it, with its acknowledged batches."""
    acknowledged = db.session.scalars(
        select(MigrationBatch.seq).filter_by(session_id=session.id).order_by(MigrationBatch.seq)
    ).all()
    return {
        "session_id": str(session.id),
        "client_session_id": session.client_session_id,
        "user_id": session.user_id,
        "status": session.status,
        "created_at": session.created_at.isoformat(),
        "acknowledged_batches": list(acknowledged),
        "protocol_version": PROTOCOL_VERSION,
    }
