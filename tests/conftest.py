"""App fixtures on a real PostgreSQL and Redis (see fixtures_services)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import flask_migrate
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import text

from lsmigrate.server import create_app
from lsmigrate.server.api.auth import issue_token
from lsmigrate.server.db import db
from tests.fixtures_services import PostgresServer, RedisServer
from tests.migration_helpers import sqlite_app

TABLES = (
    "tasks, environments, form_drafts, user_preferences, migrated_records, "
    "migration_conflicts, migration_ledger, quarantine, migration_remainders, migration_batches, migration_sessions, "
    "revoked_tokens, token_cutoffs, user_data_versions"
)


@pytest.fixture(scope="session")
def pg_app(postgres: PostgresServer, redis_server: RedisServer) -> Iterator[Flask]:
    """One app on the session's PostgreSQL and Redis, its tables created by the migrations."""
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": postgres.url,
            "REDIS_URL": redis_server.url,
            "SECRET_KEY": "vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE",  # strong: make_app may build a non-demo app with it
            "DEMO": True,
        }
    )
    with app.app_context():
        flask_migrate.upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(pg_app: Flask, redis_server: RedisServer) -> Iterator[Flask]:
    """The app with empty tables and an empty cache."""
    with pg_app.app_context():
        db.session.execute(text(f"TRUNCATE {TABLES} CASCADE"))
        db.session.commit()
    redis.Redis.from_url(redis_server.url).flushall()
    yield pg_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner of the app."""
    return app.test_cli_runner()


@pytest.fixture
def auth(app: Flask):  # type: ignore[no-untyped-def]
    """auth(user_id) -> the Authorization header of a valid token for that user."""

    def headers(user_id: str) -> dict[str, str]:
        with app.app_context():
            return {"Authorization": f"Bearer {issue_token(user_id)}"}

    return headers


@pytest.fixture(params=["postgresql", "sqlite"])
def any_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The app on PostgreSQL (emptied), then on a new SQLite file (for modules with a SQLite branch)."""
    if request.param == "postgresql":
        yield request.getfixturevalue("app")
    else:
        with sqlite_app(str(tmp_path / "app.sqlite")) as app:
            yield app
