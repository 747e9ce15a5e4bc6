"""lsmigrate's Prometheus series: their definitions, the calls that count them, and the scrape's text.

    lsmigrate_records_total{outcome, store}            records a batch wrote, by per-record outcome
    lsmigrate_batches_total{result}                    PUT .../batches/SEQ answered, by result
    lsmigrate_batch_duration_seconds{result}           how long answering one took (histogram)
    lsmigrate_errors_total{code}                       error envelopes answered, by their code
    lsmigrate_load_shed_total{reason}                  requests refused to spare the database
    lsmigrate_cache_requests_total{result}             cache reads: hit, miss, bypass (no Redis, or failing)
    lsmigrate_redis_failures_total                     Redis operations that failed
    lsmigrate_database_failures_total                  requests answered 503 database_unavailable
    lsmigrate_http_requests_total{method, endpoint, status}
    + the database's figures at scrape time (`figures`): lsmigrate_sessions{state},
      lsmigrate_quarantined_records, lsmigrate_open_conflicts, lsmigrate_scrape_database_up

Every label value comes from a small fixed set (an outcome, a result, an error code, a store's configured
name, a Flask endpoint name): never a user id, a session id, a key name, a path or record content.

The series live in a registry of lsmigrate's own (not prometheus-client's default one), so a scrape holds
lsmigrate's series only: neither the process_*/python_* collectors nor a host app's own metrics. Under
gunicorn, with PROMETHEUS_MULTIPROC_DIR set before the workers start (prometheus-client's convention), every
worker writes its values to files there and a scrape adds up all workers' (`MultiProcessCollector`); the
gunicorn configuration (`lsmigrate.server.gunicorn_conf`) tells it when a worker is gone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping

from flask import has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

PREFIX = "lsmigrate_"
#: What became of one record of a batch: the outcomes a batch's answer counts.
OUTCOMES = ("inserted", "updated", "unchanged", "quarantined", "conflict", "kept_server", "superseded")
#: How a PUT batch was answered: written, written in a dry run (rolled back), its stored answer sent again,
#: shed (refused early to spare the database: `count_load_shed`), refused (4xx) or failed (5xx).
BATCH_RESULTS = ("applied", "dry_run", "replayed", "shed", "refused", "failed")
LOAD_SHED_REASONS = ("in_flight", "queue_wait", "per_user")
CACHE_RESULTS = ("hit", "miss", "bypass")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: A batch from a few milliseconds (a replay) to a minute (10,000 records on a loaded database).
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Where `count_batch` marks the request whose batch it counted (its WSGI environ), for `batch_result`.
_APPLIED = "lsmigrate.batch_applied"
#: Where `count_load_shed` marks the request it refused (its WSGI environ), for `batch_result`.
_SHED = "lsmigrate.shed"

#: lsmigrate's series (in multiprocess mode their values are in PROMETHEUS_MULTIPROC_DIR instead).
REGISTRY = CollectorRegistry(auto_describe=True)

RECORDS = Counter(
    "lsmigrate_records",
    "Records written by batches, by what became of each (dry runs not counted).",
    ("outcome", "store"),
    registry=REGISTRY,
)
BATCHES = Counter("lsmigrate_batches", "PUT batch requests answered, by result.", ("result",), registry=REGISTRY)
BATCH_SECONDS = Histogram(
    "lsmigrate_batch_duration_seconds",
    "Time to answer a PUT batch request, by result.",
    ("result",),
    buckets=_BATCH_BUCKETS,
    registry=REGISTRY,
)
ERRORS = Counter("lsmigrate_errors", "Error envelopes answered, by their code.", ("code",), registry=REGISTRY)
LOAD_SHED = Counter(
    "lsmigrate_load_shed", "Requests refused early to spare the database, by reason.", ("reason",), registry=REGISTRY
)
CACHE_REQUESTS = Counter(
    "lsmigrate_cache_requests",
    "Cache reads: hit, miss, or bypass (no Redis configured, or Redis failing).",
    ("result",),
    registry=REGISTRY,
)
REDIS_FAILURES = Counter("lsmigrate_redis_failures", "Redis operations that failed.", registry=REGISTRY)
DATABASE_FAILURES = Counter(
    "lsmigrate_database_failures",
    "Requests answered 503 database_unavailable: the database could not be reached.",
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "lsmigrate_http_requests",
    "Requests to lsmigrate's routes, by method, Flask endpoint name and status.",
    ("method", "endpoint", "status"),
    registry=REGISTRY,
)


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR (or its older lower-case name) when the process counts for several workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def start_series(stores: Iterable[str]) -> None:
    """Create every series of a bounded label set at 0, so a dashboard sees them before the first event."""
    for store in stores:
        for outcome in OUTCOMES:
            RECORDS.labels(outcome=outcome, store=store)
    for result in BATCH_RESULTS:
        BATCHES.labels(result=result)
    for reason in LOAD_SHED_REASONS:
        LOAD_SHED.labels(reason=reason)
    for result in CACHE_RESULTS:
        CACHE_REQUESTS.labels(result=result)


def count_batch(store: str, counts: Mapping[str, int], *, dry_run: bool) -> None:
    """A batch of `store` was committed with these per-outcome counts (a dry run's records are not counted)."""
    if not dry_run:
        for outcome, count in counts.items():
            RECORDS.labels(outcome=outcome, store=store).inc(count)
    if has_request_context():
        request.environ[_APPLIED] = "dry_run" if dry_run else "applied"


def batch_result(status: int) -> str:
    """How the current PUT batch request was answered, from its status and whether `count_batch` or
    `count_load_shed` ran in it."""
    if request.environ.get(_SHED):
        return "shed"
    if status >= 500:
        return "failed"
    if status >= 400:
        return "refused"
    applied: str | None = request.environ.get(_APPLIED)
    return applied or "replayed"  # answered 2xx without writing: the stored answer of the same body


def observe_batch(result: str, seconds: float) -> None:
    """One PUT batch request answered with `result` (one of BATCH_RESULTS) in `seconds`."""
    BATCHES.labels(result=result).inc()
    BATCH_SECONDS.labels(result=result).observe(seconds)


def count_error(code: str) -> None:
    """An error envelope with `code` was answered."""
    ERRORS.labels(code=code).inc()


def count_load_shed(reason: str) -> None:
    """A request was refused early to spare the database; `reason` is one of LOAD_SHED_REASONS."""
    if reason not in LOAD_SHED_REASONS:
        raise ValueError(f"load shedding reason {reason!r} is not one of {LOAD_SHED_REASONS}")
    LOAD_SHED.labels(reason=reason).inc()
    if has_request_context():
        request.environ[_SHED] = True


def count_cache_request(result: str) -> None:
    """A cache read: "hit", "miss" or "bypass"."""
    CACHE_REQUESTS.labels(result=result).inc()


def count_redis_failure() -> None:
    """A Redis operation failed."""
    REDIS_FAILURES.inc()


def count_database_failure() -> None:
    """A request was answered 503 because the database could not be reached."""
    DATABASE_FAILURES.inc()


def count_http_request(method: str, endpoint: str, status: int) -> None:
    """A request to one of lsmigrate's routes was answered (`endpoint`: Flask's name for the route)."""
    HTTP_REQUESTS.labels(method=method if method in _METHODS else "other", endpoint=endpoint, status=str(status)).inc()


class _Ours:
    """A collector of another's families that are lsmigrate's (the multiprocess files may hold a host's too)."""

    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        return (family for family in self.source.collect() if family.name.startswith(PREFIX))


def exposition(*collectors: Collector) -> bytes:
    """The scrape's body in Prometheus' text format: lsmigrate's series (every worker's in multiprocess mode),
    then what `collectors` give (the database's figures)."""
    registry = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    if path is not None:
        registry.register(_Ours(MultiProcessCollector(None, path=path)))
    else:
        registry.register(_Ours(REGISTRY))
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)
