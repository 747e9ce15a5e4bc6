"""gunicorn settings for serving lsmigrate (scripts/demo.sh, the e2e tests and the benchmark use them).

    gunicorn -c python:lsmigrate.server.gunicorn_conf --workers 2 'lsmigrate.server:create_app()'

Each worker calls `gc.freeze()` once the app is loaded: every object alive
then (the imported modules, the app, SQLAlchemy's and marshmallow's
structures) moves to a generation the collector never scans again. A batch
allocates tens of thousands of objects, enough to set off a full collection
every few batches; without the freeze each one walked the whole heap, and
one batch in five or so took twice as long as the others.

Worker class: the ingest is CPU-bound Python, so a worker serves one request
at a time (the default sync worker) and the number of workers sets the
parallelism. A gthread worker keeps the keep-alive connections it accepted,
so a few busy clients can all land on one worker while the other idles.
"""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: called in each worker just after it has loaded the application."""
    gc.freeze()
