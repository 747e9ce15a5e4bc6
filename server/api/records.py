"""GET /api/tasks and GET /api/environments: what the user has on the server."""

from __future__ import annotations

from flask import Blueprint, Response, g

from lsmigrate.server.auth import authenticate
from lsmigrate.server.user_records import user_records

bp = Blueprint("records", __name__, url_prefix="/api")
bp.before_request(authenticate)


def _listing(kind: str) -> Response:
    # The records are JSON text already (see user_records): wrapped, not decoded and encoded again.
    body = b'{"' + kind.encode("ascii") + b'":' + user_records(g.user_id, kind) + b"}\n"
    return Response(body, mimetype="application/json")


@bp.get("/tasks")
def list_tasks() -> Response:
    """The user's tasks."""
    return _listing("tasks")


@bp.get("/environments")
def list_environments() -> Response:
    """The user's environments; the GitHub token is never returned, only its hint."""
    return _listing("environments")
