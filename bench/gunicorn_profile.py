"""gunicorn settings for `bench.ingest_http --worker-profile DIR`: each sync worker runs under cProfile.

The profile starts once the app is loaded and is written when the worker
exits, to `DIR/worker-<pid>.prof` (DIR from LSMIGRATE_BENCH_PROFILE_DIR).
The served settings' own hook (lsmigrate.server.gunicorn_conf: gc.freeze())
runs first unless LSMIGRATE_BENCH_GC_FREEZE is empty.
Sync workers only: a gthread worker serves requests on pool threads, which a
profiler enabled in the worker's main thread does not see.
"""

from __future__ import annotations

import cProfile
import os
from typing import Any

from lsmigrate.server import gunicorn_conf

_PROFILE = cProfile.Profile()


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: called in each worker just after it has loaded the application."""
    if os.environ.get("LSMIGRATE_BENCH_GC_FREEZE"):
        gunicorn_conf.post_worker_init(worker)
    _PROFILE.enable()


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: called in the worker as it exits."""
    _PROFILE.disable()
    _PROFILE.dump_stats(os.path.join(os.environ["LSMIGRATE_BENCH_PROFILE_DIR"], f"worker-{os.getpid()}.prof"))
