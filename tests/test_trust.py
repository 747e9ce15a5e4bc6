"""Trust (issue 13, design §12): settings parsed strictly, demo tokens only for a demo server, the demo only on
a database of this machine, and every commit the page relies on durable whatever the database's default."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import flask_migrate
import psycopg
import pytest
from flask import Flask
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import event

from lsmigrate.server import create_app
from lsmigrate.server.api.auth import DEMO_AUDIENCE, issue_token
from lsmigrate.server.db import db
from lsmigrate.shared.canonical import digest
from tests.migration_helpers import API, migrate

#: A key strong enough for a server outside demo mode.
KEY = "vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE"
FALSE = ["False", "false", "no", "OFF", "0", " off "]
TRUE = ["True", "yes", "ON", "1"]


def standalone(tmp_path: Path, **config: Any) -> Flask:
    base = {
        "TESTING": True,
        "SECRET_KEY": KEY,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}",
        "STORES": "lsmigrate.demo.stores:STORES",
        "MODELS": ["lsmigrate.demo.models"],
    }
    app = create_app({**base, **config})
    if str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        with app.app_context():
            flask_migrate.upgrade()
    return app


@pytest.mark.parametrize("value", FALSE)
def test_a_false_demo_setting_leaves_the_demo_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LSMIGRATE_DEMO", value)
    app = standalone(tmp_path)
    assert app.config["DEMO"] is False
    assert app.test_client().get("/demo?user=mallory").status_code == 404


@pytest.mark.parametrize("value", TRUE)
def test_a_true_demo_setting_turns_the_demo_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LSMIGRATE_DEMO", value)
    assert standalone(tmp_path).config["DEMO"] is True


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEMO", "maybe", "LSMIGRATE_DEMO: expected a boolean (true/false, 1/0, yes/no, on/off), found 'maybe'"),
        ("RATELIMIT_ENABLED", "2", "LSMIGRATE_RATELIMIT_ENABLED: expected a boolean"),
        ("MAX_BATCH_RECORDS", "lots", "LSMIGRATE_MAX_BATCH_RECORDS: expected a whole number, found 'lots'"),
        ("SESSION_IDLE_SECONDS", "-5", "LSMIGRATE_SESSION_IDLE_SECONDS: expected a number of zero or more"),
        ("CACHE_RETRY_SECONDS", "soon", "LSMIGRATE_CACHE_RETRY_SECONDS: expected a number, found 'soon'"),
    ],
)
def test_a_setting_of_the_wrong_kind_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"LSMIGRATE_{name}", value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        standalone(tmp_path)


def test_a_demo_token_is_refused_by_a_server_not_in_demo_mode(tmp_path: Path) -> None:
    demo = standalone(tmp_path, DEMO=True)
    page = demo.test_client().get("/demo?user=alice")
    assert page.status_code == 200
    with demo.app_context():
        demo_token = issue_token("alice", DEMO_AUDIENCE)
        regular = issue_token("alice")
    (tmp_path / "other").mkdir()
    other = standalone(tmp_path / "other", DEMO=False)  # the same secret key
    for token, expected in ((demo_token, 401), (regular, 200)):
        answer = other.test_client().get(f"{API}/config", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == expected, answer.json
    # A token without issuer and audience (signed with the key, as tokens were before) is refused too.
    legacy = URLSafeTimedSerializer(KEY, salt="lsmigrate bearer token").dumps({"sub": "alice"})
    answer = other.test_client().get(f"{API}/config", headers={"Authorization": f"Bearer {legacy}"})
    assert (answer.status_code, answer.json["error"]["code"]) == (401, "invalid_token")
    # The demo server takes both.
    for token in (demo_token, regular):
        assert demo.test_client().get(f"{API}/config", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_demo_refuses_a_database_on_another_host_unless_told(tmp_path: Path) -> None:
    remote = "postgresql://demo@db.example.com:5432/app"
    with pytest.raises(RuntimeError, match="LSMIGRATE_DEMO_ALLOW_REMOTE_DATABASE"):
        standalone(tmp_path, DEMO=True, SQLALCHEMY_DATABASE_URI=remote)
    # Not in demo mode, or told the remote database is a throwaway one too: it starts (connecting lazily).
    standalone(tmp_path, DEMO=False, SQLALCHEMY_DATABASE_URI=remote)
    standalone(tmp_path, DEMO=True, DEMO_ALLOW_REMOTE_DATABASE="yes", SQLALCHEMY_DATABASE_URI=remote)
    standalone(tmp_path, DEMO=True, SQLALCHEMY_DATABASE_URI="postgresql://demo@127.0.0.1:5432/app")


def test_every_commit_the_page_relies_on_is_durable_with_synchronous_commit_off(make_app, postgres, auth) -> None:
    database = psycopg.conninfo.conninfo_to_dict(postgres.conninfo)["dbname"]
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
    try:
        app = make_app(None)
        settings_at_commit: list[str] = []

        def before_commit(connection: Any) -> None:
            settings_at_commit.append(connection.exec_driver_sql("SHOW synchronous_commit").scalar())

        with app.app_context():
            engine = db.engine
            engine.dispose()  # new connections: the database's default (off) applies
            with engine.connect() as probe:
                assert probe.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        event.listen(engine, "commit", before_commit)
        try:
            migrate(app.test_client(), auth("alice"), {"task-store": [{"id": "a", "title": "A"}]})
        finally:
            event.remove(engine, "commit", before_commit)
        # Every commit (the session, the batch, the remainder, complete) was durable.
        assert settings_at_commit == ["on"] * len(settings_at_commit) and len(settings_at_commit) >= 4
    finally:
        with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
            connection.execute(f'ALTER DATABASE "{database}" RESET synchronous_commit')


@pytest.mark.parametrize("value", [1, 0, "true", "yes", None])
def test_dry_run_is_true_or_false_and_nothing_else(client, auth, value: Any) -> None:
    body = {"client_session_id": "c", "dry_run": value}
    answer = client.post(f"{API}/sessions", json=body, headers=auth("alice"))
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "invalid_request")
    assert "dry_run" in answer.json["error"]["details"]


def test_an_offset_past_a_32_bit_index_is_a_422_not_a_500(client, auth) -> None:
    headers = auth("alice")
    session = client.post(f"{API}/sessions", json={"client_session_id": "c"}, headers=headers).json["session_id"]
    for offset, records in ((2**31 - 1, [{"id": "a"}, {"id": "b"}]), (2**31, [{"id": "a"}]), (2**40, [])):
        body = {"key": "task-store", "offset": offset, "records": records, "digests": [digest(r) for r in records]}
        answer = client.put(f"{API}/sessions/{session}/batches/0", json=body, headers=headers)
        assert (answer.status_code, answer.json["error"]["code"]) == (422, "invalid_request"), offset


def test_a_user_id_no_column_holds_gets_no_token_and_a_forged_one_is_refused(app, client) -> None:
    with app.app_context():
        with pytest.raises(ValueError, match="1 to 255 characters"):
            issue_token("u" * 256)
        claims = {"sub": "u" * 256, "iss": "lsmigrate", "aud": "lsmigrate", "jti": "x"}
        forged = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="lsmigrate bearer token").dumps(claims)
    answer = client.get(f"{API}/config", headers={"Authorization": f"Bearer {forged}"})
    assert (answer.status_code, answer.json["error"]["code"]) == (401, "invalid_token")
    result = app.test_cli_runner().invoke(args=["lsmigrate", "token", "u" * 256])
    assert result.exit_code == 2 and "1 to 255 characters" in result.output


def test_a_database_error_never_carries_record_content(app) -> None:
    with app.app_context():
        assert db.engine.hide_parameters is True


def test_a_chunked_body_over_the_limit_is_a_413(app, client, auth, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1000)
    body = json.dumps({"client_session_id": "c", "padding": "x" * 5000}).encode()
    answer = client.post(
        f"{API}/sessions",
        input_stream=io.BytesIO(body),
        headers={**auth("alice"), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert (answer.status_code, answer.json["error"]["code"]) == (413, "request_too_large")
