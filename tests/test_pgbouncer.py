"""lsmigrate through PgBouncer 1.18 in transaction pooling (deploy/pgbouncer.py), and the setting it needs.

In transaction mode consecutive transactions of one client may run on different server connections, and
one server connection serves many clients. psycopg prepares a statement on the server after its fifth run
on a connection (`prepare_threshold`), naming it `_pg3_0`, `_pg3_1`, ...: through such a pooler another
client's statement of that name is already there, or the client's own is not. With
DATABASE_PREPARED_STATEMENTS false lsmigrate never prepares, and a migration goes through whole.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy.exc import DBAPIError

from deploy.pgbouncer import PgBouncer
from lsmigrate.server import create_app
from lsmigrate.server.db import db
from tests.corpus import realistic_tasks
from tests.fixtures_services import PostgresServer, RedisServer
from tests.migration_helpers import API, batch_body, complete, db_rows

KEY = "task-store"
#: More than psycopg's prepare_threshold (5): each batch's statements run often enough to be prepared.
BATCHES = 8
BATCH = 5
STRONG_KEY = "kP4wR8zN2vL6tQ9xC3mB7fJ1hD5sG0yA"


@pytest.fixture
def pgbouncer(postgres: PostgresServer) -> Iterator[PgBouncer]:
    """PgBouncer in front of the session's PostgreSQL with ONE server connection: every transaction of every
    client runs on it, so a statement one client prepared is there for the next client to collide with."""
    root = Path(tempfile.mkdtemp(prefix="lsmigrate-pgbouncer-"))
    root.chmod(0o711)  # PgBouncer runs as the postgres user in its folder inside
    bouncer = PgBouncer(root / "pgbouncer", postgres.port, pool_size=1)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(root, ignore_errors=True)


def _migrate_side_by_side(apps: list[Flask], auth: Callable[[str], dict[str, str]]) -> dict[str, list[Any]]:
    """One user per app, their batches interleaved (app 0, app 1, app 0, ...), then each completes."""
    users = {f"pooled-{i}": realistic_tasks(BATCHES * BATCH, seed=i) for i in range(len(apps))}
    clients = [app.test_client() for app in apps]
    sessions = []
    for client, user in zip(clients, users, strict=True):
        opened = client.post(f"{API}/sessions", json={"client_session_id": "pooled"}, headers=auth(user))
        assert opened.status_code == 201, opened.json
        sessions.append(opened.json["session_id"])
    for seq in range(BATCHES):
        for client, (user, records), sid in zip(clients, users.items(), sessions, strict=True):
            offset = seq * BATCH
            body = {**batch_body(KEY, records[offset : offset + BATCH], offset), "store": "tasks"}
            answer = client.put(f"{API}/sessions/{sid}/batches/{seq}", json=body, headers=auth(user))
            assert answer.status_code == 200, answer.json
            assert answer.json["counts"] == {"inserted": BATCH}
    for client, (user, records), sid in zip(clients, users.items(), sessions, strict=True):
        verdict = complete(client, auth(user), sid, {KEY: records})
        assert verdict.status_code == 200 and verdict.json["verified"], verdict.json
    return users


def _pooled_apps(
    make_app: Callable[..., Flask], redis_server: RedisServer, pgbouncer: PgBouncer, prepared: bool
) -> list[Flask]:
    # Two apps, two engines: two clients of PgBouncer sharing its one server connection.
    return [
        make_app(redis_server.url, SQLALCHEMY_DATABASE_URI=pgbouncer.url, DATABASE_PREPARED_STATEMENTS=prepared)
        for _ in range(2)
    ]


def test_a_migration_goes_through_pgbouncer_without_prepared_statements(
    make_app: Callable[..., Flask],
    redis_server: RedisServer,
    pgbouncer: PgBouncer,
    postgres: PostgresServer,
    auth: Callable[[str], dict[str, str]],
) -> None:
    users = _migrate_side_by_side(_pooled_apps(make_app, redis_server, pgbouncer, prepared=False), auth)

    for user, records in users.items():
        rows = db_rows(postgres, "SELECT count(*) FROM tasks WHERE user_id = %s", user)
        assert rows == [(len(records),)]
    # What PgBouncer's one server connection holds: no prepared statement of anyone's.
    with psycopg.connect(pgbouncer.url, prepare_threshold=None) as connection:
        assert connection.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)


def test_prepared_statements_break_through_pgbouncer_in_transaction_mode(
    make_app: Callable[..., Flask],
    redis_server: RedisServer,
    pgbouncer: PgBouncer,
    auth: Callable[[str], dict[str, str]],
) -> None:
    """The setting matters: with psycopg's default the same migration fails on the sixth run of a statement."""
    with pytest.raises(DBAPIError) as raised:
        _migrate_side_by_side(_pooled_apps(make_app, redis_server, pgbouncer, prepared=True), auth)

    # The second client prepares `_pg3_0` on the server connection where the first one's already is (or
    # runs its own `_pg3_0` on a connection that never had it).
    assert isinstance(
        raised.value.orig, psycopg.errors.DuplicatePreparedStatement | psycopg.errors.InvalidSqlStatementName
    )
    assert "_pg3_" in str(raised.value.orig)


@pytest.mark.parametrize(
    ("given", "prepared"),
    [(None, True), ("false", False), ("0", False), ("off", False), ("true", True), ("YES", True)],
)
def test_the_setting_turns_psycopg_preparing_off(
    monkeypatch: pytest.MonkeyPatch, postgres: PostgresServer, given: str | None, prepared: bool
) -> None:
    if given is not None:
        monkeypatch.setenv("LSMIGRATE_DATABASE_PREPARED_STATEMENTS", given)
    app = create_app({"SQLALCHEMY_DATABASE_URI": postgres.url, "SECRET_KEY": STRONG_KEY, "DEMO": True})
    with app.app_context():
        with db.engine.connect() as connection:
            threshold = connection.connection.dbapi_connection.prepare_threshold  # type: ignore[union-attr]
        db.engine.dispose()
    assert app.config["DATABASE_PREPARED_STATEMENTS"] is prepared
    assert threshold == (5 if prepared else None)


def test_the_setting_is_parsed_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSMIGRATE_DATABASE_PREPARED_STATEMENTS", "sometimes")
    with pytest.raises(ValueError, match="LSMIGRATE_DATABASE_PREPARED_STATEMENTS: expected a boolean"):
        create_app({"SECRET_KEY": STRONG_KEY, "DEMO": True})


def test_sqlite_takes_the_setting_and_ignores_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'app.sqlite'}"
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": uri, "DATABASE_PREPARED_STATEMENTS": False, "SECRET_KEY": STRONG_KEY, "DEMO": True}
    )
    assert "connect_args" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]
