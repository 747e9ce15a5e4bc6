"""GET /metrics: lsmigrate's Prometheus series, for an operator's token only.

The scrape is refused (401 `operator_token_required`) without an operator's bearer token
(`lsmigrate operator-token NAME`); a user's token is never one. It is not rate-limited (see `api.limits`).
"""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from lsmigrate.server.observability.figures import DatabaseCollector
from lsmigrate.server.observability.metrics import exposition
from lsmigrate.server.operator.auth import require_operator

bp = Blueprint("observability", __name__)


@bp.get("/metrics")
def show_metrics() -> Response:
    """Every lsmigrate series (all workers' under gunicorn) and the database's figures, in Prometheus' text format."""
    require_operator()
    response = Response(exposition(DatabaseCollector()), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
