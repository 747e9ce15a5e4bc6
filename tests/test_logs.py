"""LOG_FORMAT=json on a real PostgreSQL: one JSON object per line, the request's id, users as keyed hashes, no
record content; and the request id on every answer of lsmigrate's routes, whatever the format."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

from lsmigrate.server import create_app
from lsmigrate.server.observability.logs import JsonLinesHandler
from tests.fixtures_services import PostgresServer
from tests.migration_helpers import (
    API,
    TOKEN,
    batch_body,
    before_statement,
    complete,
    open_session,
    put,
    terminate_backend,
)

TASKS = [
    {"id": "log-task-1", "title": "Secret plans for the launch"},
    {"id": "log-task-2", "title": "Buy a present for Bob", "description": "a very private description"},
]
ENVIRONMENTS = [{"id": "log-env", "name": "Logged environment", "githubToken": TOKEN}]
CONTENT = ["Secret plans for the launch", "Buy a present for Bob", "a very private description", TOKEN]


@pytest.fixture
def lsmigrate_logger() -> Iterator[logging.Logger]:
    """The `lsmigrate` logger, put back as it was afterwards (the JSON handler is the process's)."""
    logger = logging.getLogger("lsmigrate")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield logger
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


@pytest.fixture
def json_app(make_app: Callable[..., Flask], lsmigrate_logger: logging.Logger) -> Iterator[tuple[Flask, io.StringIO]]:
    """(an app with LOG_FORMAT json, the text its lsmigrate loggers wrote)."""
    root_handlers = list(logging.getLogger().handlers)
    app = make_app(None, LOG_FORMAT="json")
    assert logging.getLogger().handlers == root_handlers  # the root logger is the host's: left alone
    (handler,) = [h for h in lsmigrate_logger.handlers if isinstance(h, JsonLinesHandler)]
    written = io.StringIO()
    handler.setStream(written)
    yield app, written


def lines(written: io.StringIO) -> list[dict[str, Any]]:
    """Every line written, each parsed as one JSON object."""
    parsed = [json.loads(line) for line in written.getvalue().splitlines()]
    assert all(isinstance(line, dict) for line in parsed)
    return parsed


def access_lines(written: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines(written) if line["logger"] == "lsmigrate.access"]


def test_every_request_writes_one_json_access_line_with_its_request_id(json_app, auth) -> None:
    app, written = json_app
    client = app.test_client()
    alice = auth("alice")
    sid = open_session(client, alice, "logged")
    response = client.put(
        f"{API}/sessions/{sid}/batches/0",
        json=batch_body("task-store", TASKS),
        headers={**alice, "X-Request-Id": "req-4.2_A"},
    )
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "req-4.2_A"

    opened, batch = access_lines(written)
    assert batch["request_id"] == "req-4.2_A"
    assert batch["method"] == "PUT" and batch["endpoint"] == "lsmigrate.migration.upload_batch"
    assert batch["status"] == 200 and isinstance(batch["duration_ms"], float) and batch["duration_ms"] > 0
    assert batch["level"] == "INFO" and batch["message"].startswith("PUT lsmigrate.migration.upload_batch 200")
    moment = datetime.fromisoformat(batch["time"].replace("Z", "+00:00"))
    assert batch["time"].endswith("Z") and moment.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 60
    assert re.fullmatch(r"[0-9a-f]{32}", opened["request_id"])  # none sent: a new one
    assert opened["request_id"] != batch["request_id"]
    assert sid not in batch["message"]  # the endpoint's name, never the path


def test_users_are_keyed_hashes_stable_per_user_and_never_their_id(json_app, auth) -> None:
    app, written = json_app
    client = app.test_client()
    for user in ("alice", "alice", "bob"):
        assert client.get(f"{API}/config", headers=auth(user)).status_code == 200
    first, second, third = access_lines(written)
    assert re.fullmatch(r"[0-9a-f]{16}", first["user"])
    assert first["user"] == second["user"] != third["user"]
    assert "alice" not in written.getvalue() and "bob" not in written.getvalue()

    # Keyed: another app's keys give alice another hash (nobody without the key can tell whose it is).
    other = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "DEMO": True,
         "SECRET_KEY": "Zt4mQ8wE1rY6uI3oP9aS2dF7gH0jK5lX", "LOG_FORMAT": "json"}
    )  # fmt: skip
    from lsmigrate.server.observability.logs import user_hash

    with app.app_context():
        here = user_hash("alice")
    with other.app_context():
        there = user_hash("alice")
    assert here == first["user"] and there != here


def test_no_record_content_is_logged_through_a_whole_migration(json_app, auth) -> None:
    app, written = json_app
    client = app.test_client()
    alice = auth("alice")
    sid = open_session(client, alice, "logged")
    assert put(client, alice, sid, 0, batch_body("task-store", TASKS)).status_code == 200
    assert put(client, alice, sid, 1, batch_body("environments", ENVIRONMENTS)).status_code == 200
    bad = batch_body("task-store", TASKS, offset=2)
    bad["digests"] = ["0" * 64, "1" * 64]
    assert put(client, alice, sid, 2, bad).status_code == 422
    assert complete(client, alice, sid, {"task-store": TASKS, "environments": ENVIRONMENTS}).status_code == 200
    text = written.getvalue()
    assert len(access_lines(written)) == 7  # session, 3 batches, 2 remainders, complete
    for content in [*CONTENT, "alice", "Bearer "]:
        assert content not in text, content


def test_a_warning_in_a_request_carries_its_request_id_and_user(json_app, auth, postgres: PostgresServer) -> None:
    app, written = json_app
    client = app.test_client()
    alice = auth("alice")
    sid = open_session(client, alice, "logged")
    with before_statement(app, "COPY migration_ledger", terminate_backend(postgres)):
        failed = client.put(
            f"{API}/sessions/{sid}/batches/0",
            json=batch_body("task-store", TASKS),
            headers={**alice, "X-Request-Id": "dropped-1"},
        )
    assert failed.status_code == 503
    (warning,) = [line for line in lines(written) if line["level"] == "WARNING"]
    assert warning["logger"] == "lsmigrate.server.errors"
    assert warning["message"].startswith("Database unavailable")
    assert warning["request_id"] == "dropped-1"
    assert warning["user"] == access_lines(written)[-1]["user"]
    assert access_lines(written)[-1]["status"] == 503


@pytest.mark.parametrize(
    "sent", ["", "has space", "x" * 65, "semi;colon", "ünï"], ids=["empty", "space", "long", "semi", "latin"]
)
def test_an_unusable_request_id_is_replaced(json_app, sent: str) -> None:
    app, written = json_app
    answered = app.test_client().get("/healthz", headers={"X-Request-Id": sent}).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", answered) and answered != sent
    assert access_lines(written)[-1]["request_id"] == answered


def test_text_logs_by_default_still_answer_a_request_id(
    make_app: Callable[..., Flask], lsmigrate_logger: logging.Logger
) -> None:
    client = make_app(None).test_client()
    assert not [h for h in lsmigrate_logger.handlers if isinstance(h, JsonLinesHandler)]
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"


def test_the_host_apps_own_routes_get_no_request_id(json_app) -> None:
    app, written = json_app
    response = app.test_client().get("/no-such-page", headers={"X-Request-Id": "abc-123"})
    assert response.status_code == 404
    assert "X-Request-Id" not in response.headers
    assert access_lines(written) == []


@pytest.mark.parametrize("given", ["yaml", "", "JSONL", 1])
def test_an_unknown_log_format_stops_start_up(given: object) -> None:
    with pytest.raises(ValueError, match="LSMIGRATE_LOG_FORMAT: expected one of text, json"):
        create_app({"TESTING": True, "DEMO": True, "SECRET_KEY": "x" * 40, "LOG_FORMAT": given})


def test_the_log_format_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, lsmigrate_logger: logging.Logger, tmp_path
) -> None:
    monkeypatch.setenv("LSMIGRATE_LOG_FORMAT", "JSON")
    app = create_app(
        {"TESTING": True, "DEMO": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}",
         "SECRET_KEY": "Zt4mQ8wE1rY6uI3oP9aS2dF7gH0jK5lX"}
    )  # fmt: skip
    assert app.config["LOG_FORMAT"] == "json"
    assert [h for h in lsmigrate_logger.handlers if isinstance(h, JsonLinesHandler)]
    assert lsmigrate_logger.propagate is False
