"""A row's digest (records.digests): it changes with any column but a ciphertext, and with nothing else (not
the session's TimeZone, not a rotation of keys), on PostgreSQL and on SQLite."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from lsmigrate.demo.models import Environment
from lsmigrate.server.api.auth import issue_token
from lsmigrate.server.db import db
from lsmigrate.server.records.digests import row_digests
from tests.migration_helpers import migrate

ENVIRONMENT = {"id": "env-1", "name": "Prod", "githubToken": "ghp_" + "x" * 36, "updatedAt": "2024-01-01T00:00:00Z"}


def digest_now(app) -> tuple[uuid.UUID, str]:
    with app.app_context():
        [row_id] = db.session.execute(text("SELECT id FROM environments WHERE user_id = 'alice'")).scalars().all()
        row_id = uuid.UUID(str(row_id))
        return row_id, row_digests(Environment, "alice", [row_id])[row_id]


@pytest.mark.parametrize(
    ("change", "changes_digest"),
    [
        ("UPDATE environments SET github_token_encrypted = 'another ciphertext'", False),
        ("UPDATE environments SET name = name", False),
        ("UPDATE environments SET name = 'Production'", True),
        ("UPDATE environments SET github_token_hint = '…zzzz'", True),
        ("UPDATE environments SET is_active = NOT is_active", True),
        ("UPDATE environments SET updated_at = updated_at + interval '1 microsecond'", True),
        ("UPDATE environments SET description = ''", True),  # NULL and '' are two values
    ],
)
def test_a_digest_changes_with_every_column_but_a_ciphertext(any_app, change: str, changes_digest: bool) -> None:
    if "interval" in change and any_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        change = "UPDATE environments SET updated_at = '2030-01-01 00:00:00.000001+00:00'"
    client = any_app.test_client()
    with any_app.app_context():
        headers = {"Authorization": f"Bearer {issue_token('alice')}"}
    migrate(client, headers, {"environments": [ENVIRONMENT]}, "s1")
    row_id, before = digest_now(any_app)
    with any_app.app_context():
        db.session.execute(text(change))
        db.session.commit()
    assert (digest_now(any_app)[1] != before) is changes_digest


def test_on_postgresql_the_sessions_time_zone_does_not_change_a_digest(app, client, auth) -> None:
    migrate(client, auth("alice"), {"environments": [ENVIRONMENT]}, "s1")
    row_id, before = digest_now(app)
    with app.app_context():
        for zone in ("Pacific/Kiritimati", "America/Adak", "UTC"):
            db.session.execute(text(f"SET LOCAL TimeZone = '{zone}'"))
            db.session.execute(text("SET LOCAL DateStyle = 'SQL, DMY'"))
            assert row_digests(Environment, "alice", [row_id]) == {row_id: before}
        db.session.rollback()
    with app.app_context():
        assert row_digests(Environment, "bob", [row_id]) == {}  # only the user's rows
