"""The migration protocol under /api/migration (design §6)."""

from __future__ import annotations

from flask import Blueprint, g, request
from flask.typing import ResponseReturnValue

from lsmigrate.server.auth import authenticate
from lsmigrate.server.ingest import put_batch
from lsmigrate.server.payloads import load_body
from lsmigrate.server.sessions import describe_session, find_session, open_session
from lsmigrate.server.verification import complete_session
from lsmigrate.shared.protocol import CompleteRequest, SessionRequest

bp = Blueprint("migration", __name__, url_prefix="/api/migration")
bp.before_request(authenticate)

_SESSION_REQUEST = SessionRequest()
_COMPLETE_REQUEST = CompleteRequest()


@bp.post("/sessions")
def create_session() -> ResponseReturnValue:
    """Open a session, or return the one already open for this client session id."""
    payload = load_body(_SESSION_REQUEST, request.get_data())
    session, created = open_session(g.user_id, payload["client_session_id"])
    return describe_session(session), 201 if created else 200


@bp.get("/sessions/<sid>")
def show_session(sid: str) -> ResponseReturnValue:
    """The session's status and acknowledged batches."""
    return describe_session(find_session(g.user_id, sid))


@bp.put("/sessions/<sid>/batches/<int:seq>")
def upload_batch(sid: str, seq: int) -> ResponseReturnValue:
    """Apply one batch, idempotently."""
    return put_batch(find_session(g.user_id, sid), seq, request.get_data())


@bp.post("/sessions/<sid>/complete")
def complete(sid: str) -> ResponseReturnValue:
    """Verify the client's manifest and answer which keys may be deleted."""
    session = find_session(g.user_id, sid)
    payload = load_body(_COMPLETE_REQUEST, request.get_data())
    return complete_session(session, payload["manifest"])
