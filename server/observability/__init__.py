"""What an operator watches: Prometheus series at /metrics, and logs as JSON lines.

    metrics   the series (lsmigrate_…), the calls that count them, the scrape's text (multiprocess under gunicorn)
    figures   the database's figures, read at scrape time (sessions by state, quarantine, open conflicts)
    hooks     per request on lsmigrate's routes: the request id, the request's series, the access line
    logs      LOG_FORMAT "json": lsmigrate's loggers as JSON lines; users only as keyed hashes
    views     GET /metrics, behind the operator's credential

`init_app` is called by `LSMigrate.init_app`; docs/operations-metrics.md says how to scrape and what each series
means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask

from lsmigrate.server.observability import hooks, logs
from lsmigrate.server.observability.metrics import count_load_shed, start_series


def init_app(app: Flask, settings: Mapping[str, Any], stores: Iterable[str]) -> None:
    """Observe lsmigrate's routes on `app`: its log format, its request hooks, its series at 0 for `stores`."""
    logs.init_app(app, settings)
    hooks.init_app(app)
    start_series(stores)


__all__ = ["count_load_shed", "init_app"]
