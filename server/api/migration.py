"""The migration protocol under /api/migration (design §6)."""

from __future__ import annotations

import hashlib

from flask import Flask, g
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue

from lsmigrate.server.api.auth import authenticate
from lsmigrate.server.api.bodies import load_body, request_body
from lsmigrate.server.api.shedding import batch_slot, shed_queued
from lsmigrate.server.blueprint import ApiBlueprint
from lsmigrate.server.errors import Conflict
from lsmigrate.server.extension import current_lsmigrate, settings
from lsmigrate.server.ingest import put_batch
from lsmigrate.server.records.quarantine import list_quarantine
from lsmigrate.server.sessions import describe_session, find_session, open_session
from lsmigrate.server.sessions.conflicts import find_conflict, list_conflicts, resolve_conflict
from lsmigrate.server.sessions.keys import list_keys, put_remainder, show_key
from lsmigrate.server.sessions.rollback import rollback_session
from lsmigrate.server.sessions.verify import complete_session
from lsmigrate.shared.protocol import MAX_SEQ, PROTOCOL_VERSION, CompleteRequest, ResolveRequest, SessionRequest

bp = ApiBlueprint("migration", __name__, url_prefix="/api/migration")
bp.before_request(shed_queued)  # first: a request that queued too long is answered before any work
bp.before_request(authenticate)

_SESSION_REQUEST = SessionRequest()
_COMPLETE_REQUEST = CompleteRequest()
_RESOLVE_REQUEST = ResolveRequest()


@bp.record_once
def _check_policies(state: BlueprintSetupState) -> None:
    # A CONFLICT_POLICIES entry naming no policy fails when the app is built, not on a user's batch.
    app: Flask = state.app  # type: ignore[assignment]
    with app.app_context():
        current_lsmigrate().policies()


def user_digest(user_id: str) -> str:
    """What the page binds its checkpoint and backups to: a digest of the user id, never the id.

    sha256 under lsmigrate's own label, not under a secret key: it must stay the same when the keys rotate,
    or a user's own checkpoint and backups would turn into another user's.
    """
    return hashlib.sha256(b"lsmigrate browser owner\n" + user_id.encode("utf-8")).hexdigest()


@bp.get("/config")
def show_config() -> ResponseReturnValue:
    """The limits, the protocol version, the stores with the conflict policies this server applies, and the
    digest the page binds the user's checkpoint and backups to."""
    catalog = current_lsmigrate().catalog
    policies = current_lsmigrate().policies()
    return {
        "user_digest": user_digest(g.user_id),
        "protocol_version": PROTOCOL_VERSION,
        "limits": {
            "max_batch_records": settings()["MAX_BATCH_RECORDS"],
            "max_body_bytes": settings()["MAX_CONTENT_LENGTH"],
        },
        "stores_version": catalog.version(policies),
        "stores": catalog.describe(policies),
    }


def _refuse_other_stores(page_version: str | None) -> None:
    """A page built for other stores than this server's maps differently: refused before anything is written."""
    if page_version is None:
        return
    catalog = current_lsmigrate().catalog
    version = catalog.version(current_lsmigrate().policies())
    if page_version != version:
        raise Conflict(
            "The page was built for other stores than this server's: reload the page to get the current ones.",
            code="stores_version_mismatch",
            details={"server": version, "page": page_version},
        )


@bp.post("/sessions")
def create_session() -> ResponseReturnValue:
    """Open a session, or return the one already open for this client session id."""
    payload = load_body(_SESSION_REQUEST, request_body())
    _refuse_other_stores(payload["stores_version"])
    session, created = open_session(g.user_id, payload["client_session_id"], payload["dry_run"])
    return describe_session(session), 201 if created else 200


@bp.get("/sessions/<sid>")
def show_session(sid: str) -> ResponseReturnValue:
    """The session's status, acknowledged batches and per-key counts."""
    return describe_session(find_session(g.user_id, sid))


@bp.put(f"/sessions/<sid>/batches/<int(max={MAX_SEQ}):seq>")  # beyond MAX_SEQ: 404, not a failed query
def upload_batch(sid: str, seq: int) -> ResponseReturnValue:
    """Apply one batch, idempotently (in one of the instance's batch slots: `shedding`)."""
    with batch_slot():
        return put_batch(find_session(g.user_id, sid), seq, request_body())


@bp.put("/sessions/<sid>/remainders")
def upload_remainder(sid: str) -> ResponseReturnValue:
    """Keep what no store claims in one key (idempotent)."""
    return put_remainder(find_session(g.user_id, sid), request_body())


@bp.get("/keys")
def show_keys() -> ResponseReturnValue:
    """The keys the server holds for the user: the latest verified value of each, and its session."""
    return list_keys(g.user_id)


@bp.get("/keys/<path:key>")
def show_one_key(key: str) -> ResponseReturnValue:
    """One key's latest verified value, rebuilt: the string localStorage held."""
    return show_key(g.user_id, key)


@bp.post("/sessions/<sid>/complete")
def complete(sid: str) -> ResponseReturnValue:
    """Verify the client's manifest and answer which keys may be deleted."""
    with batch_slot():
        session = find_session(g.user_id, sid)
        payload = load_body(_COMPLETE_REQUEST, request_body())
        return complete_session(session, payload["manifest"])


@bp.get("/sessions/<sid>/conflicts")
def show_conflicts(sid: str) -> ResponseReturnValue:
    """The session's conflicts with both versions, secrets masked."""
    return {"conflicts": list_conflicts(find_session(g.user_id, sid))}


@bp.post("/sessions/<sid>/conflicts/<cid>")
def resolve(sid: str, cid: str) -> ResponseReturnValue:
    """Keep the local or the server version of one conflict's record."""
    session = find_session(g.user_id, sid)
    conflict = find_conflict(session, cid)
    payload = load_body(_RESOLVE_REQUEST, request_body())
    return resolve_conflict(session, conflict, payload["keep"], actor=f"user:{g.user_id}")


@bp.get("/sessions/<sid>/quarantine")
def show_quarantine(sid: str) -> ResponseReturnValue:
    """The session's quarantined records with their reasons, secrets masked."""
    return {"records": list_quarantine(find_session(g.user_id, sid))}


@bp.post("/sessions/<sid>/rollback")
def rollback(sid: str) -> ResponseReturnValue:
    """Undo the session on the server: its inserted rows deleted, its overwritten rows restored."""
    return rollback_session(find_session(g.user_id, sid), actor=f"user:{g.user_id}")
