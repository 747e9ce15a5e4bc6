"""What every request to lsmigrate's routes leaves behind: its request id, its series, its access line.

- Request id: the request's `X-Request-Id` when it is a sane token (1-64 of A-Z a-z 0-9 . _ -), else a
  new uuid4 in hex; kept in `g.request_id` and sent back in the answer's `X-Request-Id`.
- Series: `lsmigrate_http_requests_total{method, endpoint, status}` (Flask's endpoint name, never the path,
  which names sessions); for a PUT batch, `lsmigrate_batches_total{result}` and its duration.
- Access line (json logs only): logger `lsmigrate.access`, with method, endpoint, status, duration_ms, the
  request id and the user's hash once authenticated.

They are app hooks that look at the request's blueprint, so they see lsmigrate's routes (standalone or
mounted in a host app) and leave the host's own alone. Registered before the rate limiter's, they run before
it: a request it refuses has its id and its timing too.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from lsmigrate.server.observability.logs import FIELDS, json_logs
from lsmigrate.server.observability.metrics import batch_result, count_http_request, observe_batch

access_log = logging.getLogger("lsmigrate.access")

#: The blueprint lsmigrate's routes are under (`lsmigrate.server.blueprint.NAME`).
ROOT = "lsmigrate"
BATCH_ENDPOINT = "lsmigrate.migration.upload_batch"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Where the request keeps its id and its start (in the WSGI environ: one per request, whatever `g` is shared by).
_ID, _STARTED = "lsmigrate.request_id", "lsmigrate.started"


def init_app(app: Flask) -> None:
    """Register the hooks on `app`, for lsmigrate's routes."""
    app.before_request(_begin)
    app.after_request(_finish)


def request_id() -> str:
    """The current request's id: its X-Request-Id header when sane, else a new one."""
    given = request.headers.get("X-Request-Id", "")
    return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _ours() -> bool:
    blueprints = request.blueprints  # innermost first: ["lsmigrate.migration", "lsmigrate"]
    return bool(blueprints) and blueprints[-1] == ROOT


def _begin() -> None:
    if not _ours():
        return
    request.environ[_STARTED] = time.perf_counter()
    g.request_id = request.environ[_ID] = request_id()


def _finish(response: Response) -> Response:
    if not _ours():
        return response
    started: float | None = request.environ.get(_STARTED)
    seconds = time.perf_counter() - started if started is not None else 0.0
    if _ID not in request.environ:  # a host's hook before ours answered the request
        g.request_id = request.environ[_ID] = request_id()
    response.headers["X-Request-Id"] = request.environ[_ID]
    endpoint = request.endpoint or "unmatched"
    count_http_request(request.method, endpoint, response.status_code)
    if endpoint == BATCH_ENDPOINT:
        observe_batch(batch_result(response.status_code), seconds)
    if json_logs():
        duration_ms = round(seconds * 1000, 1)
        fields = {
            "method": request.method,
            "endpoint": endpoint,
            "status": response.status_code,
            "duration_ms": duration_ms,
        }
        access_log.info(
            "%s %s %s %.1f ms", request.method, endpoint, response.status_code, duration_ms, extra={FIELDS: fields}
        )
    return response
