"""GET /api/tasks and GET /api/environments: what the user has on the server."""

from __future__ import annotations

from flask import Blueprint, g
from flask.typing import ResponseReturnValue

from lsmigrate.server.auth import authenticate
from lsmigrate.server.user_records import user_records

bp = Blueprint("records", __name__, url_prefix="/api")
bp.before_request(authenticate)


@bp.get("/tasks")
def list_tasks() -> ResponseReturnValue:
    """The user's tasks."""
    return {"tasks": user_records(g.user_id, "tasks")}


@bp.get("/environments")
def list_environments() -> ResponseReturnValue:
    """The user's environments; the GitHub token is never returned, only its hint."""
    return {"environments": user_records(g.user_id, "environments")}
