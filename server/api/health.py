"""GET /healthz: 200 when the app can reach its database."""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from lsmigrate.server.blueprint import ApiBlueprint
from lsmigrate.server.db import db
from lsmigrate.server.errors import ServiceUnavailable

bp = ApiBlueprint("health", __name__)


@bp.get("/healthz")
def check_health() -> ResponseReturnValue:
    """Answer 200 when a query on the database succeeds, 503 otherwise."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        db.session.rollback()
        raise ServiceUnavailable("The database cannot be reached.") from error  # the envelope and Retry-After
    return {"status": "ok"}
