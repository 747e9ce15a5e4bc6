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

Metrics: with PROMETHEUS_MULTIPROC_DIR set (a folder of this instance's own), each worker writes its series
there and /metrics adds up every worker's. The folder is emptied when gunicorn starts (what a previous run
left would be counted again), and a worker that exits is marked dead.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: called in each worker just after it has loaded the application."""
    gc.freeze()


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def on_starting(server: Any) -> None:
    """gunicorn hook, in the master before the workers start: an empty metrics folder for this run."""
    path = _multiprocess_dir()
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink()
    _share_batch_slots()


def _share_batch_slots() -> None:
    """The instance's MAX_BATCHES_IN_FLIGHT slots, made before the fork so that every worker shares them."""
    from lsmigrate.server.api.shedding import share_slots
    from lsmigrate.server.config import DEFAULTS, parse_settings

    found = {
        "MAX_BATCHES_IN_FLIGHT": os.environ.get("LSMIGRATE_MAX_BATCHES_IN_FLIGHT", DEFAULTS["MAX_BATCHES_IN_FLIGHT"])
    }
    parse_settings(found)  # a wrong value stops gunicorn here, naming the setting
    share_slots(found["MAX_BATCHES_IN_FLIGHT"])


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the master: a worker exited; its live gauges leave the scrape."""
    if _multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
