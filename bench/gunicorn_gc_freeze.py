"""gunicorn settings for `bench.ingest_http --gc-freeze`: each worker freezes its heap once the app is loaded.

gc.freeze() moves every object alive at that point (the imported modules, the
app) to a generation the collector never scans again, so the full collections
that a batch's allocations trigger every few batches only walk what was
allocated since. A deployment setting, not application code.
"""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: called in each worker just after it has loaded the application."""
    gc.freeze()
