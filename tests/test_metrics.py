"""GET /metrics after real migrations on PostgreSQL and Redis: the series, their values, their labels, who may
scrape, and every gunicorn worker's series added up in one scrape (multiprocess mode)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from lsmigrate.server.observability import count_load_shed, figures
from lsmigrate.server.observability.metrics import (
    BATCH_RESULTS,
    CACHE_RESULTS,
    LOAD_SHED_REASONS,
    OUTCOMES,
    REGISTRY,
    batch_result,
)
from lsmigrate.server.operator.auth import issue_operator_token
from tests.fixtures_services import PostgresServer, RedisServer, free_port, wait_for_port
from tests.host_app.app import create_host_app
from tests.host_app.app import db as host_db
from tests.migration_helpers import (
    API,
    TOKEN,
    batch_body,
    before_statement,
    complete,
    open_session,
    put,
    recorded_statements,
    terminate_backend,
)

ROOT = Path(__file__).resolve().parent.parent
TASK_ID = str(uuid.uuid4())
TASKS = [
    {"id": TASK_ID, "title": "Metrics title one", "updatedAt": "2024-05-01T12:00:00.000Z"},
    {"id": "metrics-task-2", "title": "Metrics title two"},
    {"id": "metrics-task-3", "title": "Metrics title three"},
    {"title": {"not": "text"}},  # quarantined
]
EDITED = {"id": TASK_ID, "title": "Metrics title edited", "updatedAt": "2024-06-01T12:00:00.000Z"}
ENVIRONMENTS = [{"id": "metrics-env", "name": "Metrics environment", "githubToken": TOKEN}]
BATCH = "lsmigrate.migration.upload_batch"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (KeyError when the scrape does not hold it)."""
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def operator(app: Flask) -> dict[str, str]:
    """The Authorization header of an operator's token."""
    with app.app_context():
        return {"Authorization": f"Bearer {issue_operator_token('ops')}"}


@pytest.fixture
def scrape(app: Flask, client: FlaskClient, operator: dict[str, str]) -> Callable[..., Samples]:
    """scrape(cached=False) -> the samples of GET /metrics; the database's figures read afresh unless `cached`."""

    def get(cached: bool = False) -> Samples:
        if not cached:
            with app.app_context():
                figures.forget_figures()
        response = client.get("/metrics", headers=operator)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/plain"
        assert response.headers["Cache-Control"] == "no-store"
        return parse(response.get_data(as_text=True))

    return get


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - before.get((name, frozenset(labels.items())), 0.0)


def migrate_with_everything(client: FlaskClient, headers: dict[str, str]) -> tuple[str, str]:
    """A verified session (3 inserted, 1 quarantined, a replay, a 422) and an open one with an `ask` conflict."""
    sid = open_session(client, headers, "metrics-client-one")
    assert put(client, headers, sid, 0, batch_body("task-store", TASKS)).status_code == 200
    assert put(client, headers, sid, 1, batch_body("environments", ENVIRONMENTS)).status_code == 200
    assert put(client, headers, sid, 0, batch_body("task-store", TASKS)).status_code == 200  # replayed
    wrong = batch_body("task-store", [EDITED], offset=4)
    wrong["digests"] = ["0" * 64]
    refused = put(client, headers, sid, 2, wrong)
    assert refused.status_code == 422 and refused.json["error"]["code"] == "digest_mismatch"
    verdict = complete(client, headers, sid, {"task-store": TASKS, "environments": ENVIRONMENTS})
    assert verdict.status_code == 200, verdict.json
    other = open_session(client, headers, "metrics-client-two")
    answer = put(client, headers, other, 0, batch_body("task-store", [EDITED]))
    assert [result["outcome"] for result in answer.json["results"]] == ["conflict"]
    return sid, other


def test_a_migration_shows_in_the_series(
    app: Flask, client: FlaskClient, auth, scrape, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    before = scrape()
    migrate_with_everything(client, auth("alice"))
    after = scrape()

    records = "lsmigrate_records_total"
    assert delta(before, after, records, outcome="inserted", store="tasks") == 3
    assert delta(before, after, records, outcome="quarantined", store="tasks") == 1
    assert delta(before, after, records, outcome="conflict", store="tasks") == 1
    assert delta(before, after, records, outcome="inserted", store="environments") == 1
    assert delta(before, after, records, outcome="updated", store="tasks") == 0
    assert delta(before, after, "lsmigrate_batches_total", result="applied") == 3
    assert delta(before, after, "lsmigrate_batches_total", result="replayed") == 1
    assert delta(before, after, "lsmigrate_batches_total", result="refused") == 1
    assert delta(before, after, "lsmigrate_batch_duration_seconds_count", result="applied") == 3
    assert delta(before, after, "lsmigrate_batch_duration_seconds_bucket", result="applied", le="+Inf") == 3
    assert delta(before, after, "lsmigrate_batch_duration_seconds_sum", result="applied") > 0
    assert delta(before, after, "lsmigrate_errors_total", code="digest_mismatch") == 1
    requests = "lsmigrate_http_requests_total"
    assert delta(before, after, requests, method="PUT", endpoint=BATCH, status="200") == 4
    assert delta(before, after, requests, method="PUT", endpoint=BATCH, status="422") == 1
    assert delta(before, after, requests, method="GET", endpoint="lsmigrate.observability.show_metrics", status="200")

    # The database's figures: the tables were emptied before the test.
    assert value(after, "lsmigrate_sessions", state="verified") == 1
    assert value(after, "lsmigrate_sessions", state="open") == 1
    assert value(after, "lsmigrate_sessions", state="rolled_back") == 0
    assert value(after, "lsmigrate_quarantined_records") == 1
    assert value(after, "lsmigrate_open_conflicts") == 1
    assert value(after, "lsmigrate_scrape_database_up") == 1
    assert value(before, "lsmigrate_sessions", state="verified") == 0


def test_the_scrape_holds_no_user_session_key_or_content(
    app: Flask, client: FlaskClient, auth, operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "CONFLICT_POLICIES", {"tasks": "ask"})
    sids = migrate_with_everything(client, auth("alice"))
    assert client.get(f"{API}/sessions/{uuid.uuid4()}", headers=auth("alice")).status_code == 404
    with app.app_context():
        figures.forget_figures()
    body = client.get("/metrics", headers=operator).get_data(as_text=True)

    forbidden = ["alice", *sids, "metrics-client-one", "task-store", TOKEN, "ops", "/api/", "/sessions/"]
    forbidden += [task["title"] for task in TASKS if isinstance(task["title"], str)] + [EDITED["title"]]
    for text in forbidden:
        assert text not in body, text

    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()} | {"unmatched"}
    bounded: dict[str, Callable[[str], bool]] = {
        "outcome": lambda v: v in OUTCOMES,
        "store": lambda v: v in {spec.name for spec in app.extensions["lsmigrate"].catalog},
        "result": lambda v: v in BATCH_RESULTS + CACHE_RESULTS,
        "reason": lambda v: v in LOAD_SHED_REASONS,
        "code": lambda v: re.fullmatch(r"[a-z_]{1,40}", v) is not None,
        "method": lambda v: v in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"},
        "endpoint": lambda v: v in endpoints,
        "status": lambda v: re.fullmatch(r"[1-5][0-9][0-9]", v) is not None,
        "state": lambda v: v in figures.SESSION_STATES,
        "le": lambda v: v == "+Inf" or float(v) > 0,
    }
    families = list(text_string_to_metric_families(body))
    assert families
    for family in families:
        assert family.name.startswith("lsmigrate_"), family.name
        for sample in family.samples:
            for label, label_value in sample.labels.items():
                if label == "store" and sample.name.startswith("lsmigrate_records"):
                    # Other apps of this test process (a host app's stores) count in the same registry.
                    assert re.fullmatch(r"[a-z_]{1,64}", label_value), (sample.name, label_value)
                    continue
                assert label in bounded, (sample.name, label)
                assert bounded[label](label_value), (sample.name, label, label_value)


def test_a_scrape_needs_an_operators_token(client: FlaskClient, auth, scrape) -> None:
    before = scrape()
    for headers in ({}, auth("alice"), {"Authorization": "Bearer not-a-token"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "operator_token_required"
        assert "lsmigrate_" not in response.get_data(as_text=True)
    after = scrape()
    assert delta(before, after, "lsmigrate_errors_total", code="operator_token_required") == 3
    assert (
        delta(
            before,
            after,
            "lsmigrate_http_requests_total",
            method="GET",
            endpoint="lsmigrate.observability.show_metrics",
            status="401",
        )
        == 3
    )


def test_scrapes_are_not_rate_limited_and_users_still_are(make_app, auth) -> None:
    limited = make_app(None, RATELIMIT_DEFAULT="2 per minute")
    client = limited.test_client()
    with limited.app_context():
        operator = {"Authorization": f"Bearer {issue_operator_token('ops')}"}
    assert [client.get("/metrics", headers=operator).status_code for _ in range(5)] == [200] * 5
    statuses = [client.get(f"{API}/config", headers=auth("alice")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_batch_the_database_drops_is_counted_as_a_failure(
    app: Flask, client: FlaskClient, auth, scrape, postgres: PostgresServer
) -> None:
    headers = auth("alice")
    sid = open_session(client, headers, "metrics-failure")
    before = scrape()
    with before_statement(app, "COPY migration_ledger", terminate_backend(postgres)):
        failed = put(client, headers, sid, 0, batch_body("task-store", TASKS[1:3]))
    assert failed.status_code == 503
    after = scrape()
    assert delta(before, after, "lsmigrate_database_failures_total") == 1
    assert delta(before, after, "lsmigrate_errors_total", code="database_unavailable") == 1
    assert delta(before, after, "lsmigrate_batches_total", result="failed") == 1
    assert delta(before, after, "lsmigrate_records_total", outcome="inserted", store="tasks") == 0


def test_the_figures_are_read_once_for_a_storm_of_scrapes(app: Flask, scrape, monkeypatch: pytest.MonkeyPatch) -> None:
    scrape()  # a fresh reading
    with recorded_statements(app) as seen:
        for _ in range(5):
            scrape(cached=True)
    assert not [statement for statement in seen if "FROM migration_sessions GROUP BY" in statement]
    monkeypatch.setattr(figures, "CACHE_SECONDS", 0.0)
    with recorded_statements(app) as seen:
        scrape(cached=True)
    assert len([statement for statement in seen if "FROM migration_sessions GROUP BY" in statement]) == 1


def test_a_database_failing_during_the_scrape_is_a_series_not_a_failed_scrape(
    app: Flask, client: FlaskClient, auth, scrape, postgres: PostgresServer
) -> None:
    open_session(client, auth("alice"), "metrics-open")
    with before_statement(app, "SELECT migration_sessions.status", terminate_backend(postgres)):
        failed = scrape()
    assert value(failed, "lsmigrate_scrape_database_up") == 0
    assert not [name for name, _ in failed if name.startswith(("lsmigrate_sessions", "lsmigrate_open_conflicts"))]
    assert ("lsmigrate_batches_total", frozenset({("result", "applied")})) in failed  # the counters are still there
    recovered = scrape()
    assert value(recovered, "lsmigrate_scrape_database_up") == 1
    assert value(recovered, "lsmigrate_sessions", state="open") == 1


def test_cache_reads_and_redis_failures_are_counted(make_app, auth, own_redis: RedisServer) -> None:
    client = make_app(own_redis.url).test_client()
    alice = auth("alice")

    def counts() -> dict[str, float]:
        names = {result: ("lsmigrate_cache_requests_total", {"result": result}) for result in CACHE_RESULTS}
        names["failures"] = ("lsmigrate_redis_failures_total", {})
        return {key: REGISTRY.get_sample_value(name, labels) or 0.0 for key, (name, labels) in names.items()}

    start = counts()
    assert client.get(f"{API}/config", headers=alice).status_code == 200  # alice's revocations: not cached yet
    assert client.get(f"{API}/config", headers=alice).status_code == 200  # now they are
    warm = counts()
    assert warm["miss"] - start["miss"] == 1
    assert warm["hit"] - start["hit"] == 1
    assert warm["failures"] == start["failures"] and warm["bypass"] == start["bypass"]

    own_redis.stop()
    assert client.get(f"{API}/config", headers=alice).status_code == 200  # from PostgreSQL
    assert client.get(f"{API}/config", headers=alice).status_code == 200  # the cache leaves Redis alone a while
    down = counts()
    assert down["failures"] - warm["failures"] >= 1
    assert down["bypass"] - warm["bypass"] == 2
    assert down["hit"] == warm["hit"] and down["miss"] == warm["miss"]


def test_load_shedding_is_counted_by_reason(scrape) -> None:
    before = scrape()
    count_load_shed("per_user")
    count_load_shed("per_user")
    count_load_shed("in_flight")
    after = scrape()
    assert delta(before, after, "lsmigrate_load_shed_total", reason="per_user") == 2
    assert delta(before, after, "lsmigrate_load_shed_total", reason="in_flight") == 1
    assert delta(before, after, "lsmigrate_load_shed_total", reason="queue_wait") == 0
    with pytest.raises(ValueError, match="not one of"):
        count_load_shed("alice")


def test_a_shed_batch_is_told_from_a_refused_one(app: Flask) -> None:
    with app.test_request_context("/api/migration/sessions/x/batches/0", method="PUT"):
        assert batch_result(429) == "refused"
        count_load_shed("per_user")
        assert batch_result(429) == "shed"
    with app.test_request_context("/api/migration/sessions/x/batches/0", method="PUT"):
        assert batch_result(503) == "failed"  # one request's shedding says nothing of the next's


@pytest.fixture
def host(postgres: PostgresServer) -> Iterator[Flask]:
    """The host app of tests/host_app (lsmigrate under /tools, signed in by its own cookie), on a new database."""
    admin = postgres.conninfo.replace("dbname=lsmigrate", "dbname=postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("DROP DATABASE IF EXISTS host_metrics WITH (FORCE)")
        connection.execute("CREATE DATABASE host_metrics")
    app = create_host_app(postgres.url.rsplit("/", 1)[0] + "/host_metrics", "tests.host_app.stores:STORES")
    yield app
    with app.app_context():
        host_db.engine.dispose()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("DROP DATABASE host_metrics WITH (FORCE)")


def test_mounted_in_a_host_app_the_scrape_is_under_its_prefix_and_its_own_routes_are_not_counted(host: Flask) -> None:
    client = host.test_client()
    with host.app_context():
        operator = {"Authorization": f"Bearer {issue_operator_token('ops')}"}
        figures.forget_figures()
    assert client.get("/metrics", headers=operator).status_code == 404  # the host's own 404 page
    before = parse(client.get("/tools/metrics", headers=operator).get_data(as_text=True))
    assert client.get("/login/carol").status_code == 200
    assert client.get("/hello").headers.get("X-Request-Id") is None
    config = client.get(f"/tools{API}/config")
    assert config.status_code == 200 and config.headers["X-Request-Id"]
    after = parse(client.get("/tools/metrics", headers=operator).get_data(as_text=True))
    requests = "lsmigrate_http_requests_total"
    assert delta(before, after, requests, method="GET", endpoint="lsmigrate.migration.show_config", status="200") == 1
    assert not [labels for name, labels in after if name == requests and ("endpoint", "hello") in labels]
    assert value(after, "lsmigrate_sessions", state="open") == 0
    assert delta(before, after, "lsmigrate_records_total", outcome="inserted", store="todos") == 0


# Multiprocess mode: two gunicorn workers, one scrape.


@pytest.fixture
def gunicorn(app: Flask, postgres: PostgresServer, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, metrics folder) of gunicorn with two workers and PROMETHEUS_MULTIPROC_DIR set."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left by an earlier run")
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "DATABASE_URL": postgres.url,
        "LSMIGRATE_SECRET_KEY": app.config["SECRET_KEY"],
        "LSMIGRATE_DEMO": "1",
        "LSMIGRATE_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "gunicorn", "--config", "python:lsmigrate.server.gunicorn_conf"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"]
    process = subprocess.Popen([*command, "lsmigrate.server:create_app()"], env=env, cwd=ROOT)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", folder
    finally:
        process.terminate()
        process.wait(timeout=30)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


HEALTH = (
    "lsmigrate_http_requests_total",
    frozenset({"method": "GET", "endpoint": "lsmigrate.health.check_health", "status": "200"}.items()),
)


def _health_by_worker(folder: Path) -> dict[str, float]:
    """Each worker's count of GET /healthz answered, from its own file."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if (sample.name, frozenset(sample.labels.items())) == HEALTH:
                    counts[path.stem] = sample.value
    return counts


def test_one_scrape_adds_up_every_gunicorn_worker(gunicorn: tuple[str, Path], operator: dict[str, str]) -> None:
    url, folder = gunicorn
    assert not (folder / "counter_1.db").exists()  # what an earlier run left is not counted again
    sent = 0
    lock = threading.Lock()

    def hammer() -> None:
        nonlocal sent
        for _ in range(10):
            assert _get(f"{url}/healthz")[0] == 200
            with lock:
                sent += 1

    # Parallel clients, so both sync workers answer some; until each has (at most 20 rounds).
    for _ in range(20):
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if len(_health_by_worker(folder)) >= 2 and all(_health_by_worker(folder).values()):
            break
    by_worker = _health_by_worker(folder)
    assert len(by_worker) == 2 and all(by_worker.values()), by_worker
    assert sum(by_worker.values()) == sent

    status, body = _get(f"{url}/metrics", operator)
    assert status == 200
    samples = parse(body)
    assert samples[HEALTH] == sent  # both workers' counts, whichever answered the scrape
    assert value(samples, "lsmigrate_records_total", outcome="inserted", store="tasks") == 0
    assert value(samples, "lsmigrate_scrape_database_up") == 1
    assert all(name.startswith("lsmigrate_") for name, _ in samples)
