"""insert_rows: binary COPY on PostgreSQL, executemany on SQLite, the same rows either way."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import JSON, BigInteger, Column, Integer, MetaData, Table, delete, event, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from lsmigrate.demo.models import Environment, Task
from lsmigrate.server.db import db
from lsmigrate.server.db.copy import insert_rows
from lsmigrate.server.db.models import LedgerEntry, MigrationSession
from tests.fixtures_services import PostgresServer
from tests.migration_helpers import before_statement, db_rows, recorded_statements, sqlite_app, terminate_backend

TASKS: Table = Task.__table__
ENVIRONMENTS: Table = Environment.__table__
LEDGER: Table = LedgerEntry.__table__
SESSIONS: Table = MigrationSession.__table__
NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def task_row(**changes: Any) -> dict[str, Any]:
    """A tasks row with every column given, in the column types' awkward corners."""
    row = {
        "id": uuid.uuid4(),
        "user_id": "alice",
        "metadata": {"source": {"key": "task-store", "index": 0}, "tags": ["é", "☃", "🐍"], "empty": {}},
        "source_digest": "ab" * 32,
        "migration_session_id": None,
        "created_at": NOW,
        "updated_at": NOW + timedelta(days=1),
        "title": 'Fix the ünïcode 🐍 — "quoted", tab\there',
        "description": None,
        "status": "pending",
        "priority": "high",
        "branch": "main",
        "session_id": "s-1",
        "repository": "owner/repo",
        "status_message": "",
        "is_archived": False,
        "has_changes": True,
        "pull_request": {"number": 2**70 + 1, "nested": {"list": [1, {"deep": None}, "ü"], "flag": False}},
    }
    return row | changes


def environment_row(name: str) -> dict[str, Any]:
    """An environments row that leaves `is_active` to its default."""
    return {
        "id": uuid.uuid4(),
        "user_id": "alice",
        "metadata": {},
        "source_digest": "cd" * 32,
        "migration_session_id": None,
        "created_at": NOW,
        "updated_at": NOW,
        "name": name,
        "description": None,
        "github_organization": "org",
        "github_repository": None,
        "github_token_encrypted": None,
        "github_token_hint": None,
    }


def ledger_row(session_id: uuid.UUID, index: int, **changes: Any) -> dict[str, Any]:
    """A migration_ledger row of session `session_id`."""
    row = {
        "session_id": session_id,
        "user_id": "alice",
        "key": "task-store",
        "index": index,
        "batch_seq": 0,
        "source_id": f"task-{index}",
        "digest": "ef" * 32,
        "outcome": "inserted",
        "target_table": "tasks",
        "target_id": uuid.uuid4(),
        "warnings": [],
        "version_at": None,
        "pre_image": None,
    }
    return row | changes


def open_migration_session(user_id: str = "alice") -> uuid.UUID:
    """A committed migration session (the ledger's rows need one); its id."""
    session = MigrationSession(user_id=user_id, client_session_id="c", created_at=NOW, last_active_at=NOW)
    db.session.add(session)
    db.session.commit()
    return session.id


def read(table: Table) -> list[dict[str, Any]]:
    """Every row of `table` as SQLAlchemy reads it back, in a session of its own, by primary key."""
    db.session.remove()
    return [dict(row) for row in db.session.execute(select(table).order_by(*table.primary_key)).mappings()]


def by_key(rows: list[dict[str, Any]], table: Table) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: tuple(str(row[column.name]) for column in table.primary_key))


def on_postgresql(app: Flask) -> bool:
    return str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql")


def test_rows_land_with_every_value_exactly(any_app: Flask) -> None:
    rows = [task_row(), task_row(title="Second", description="Ü" * 300, pull_request={"n": -(2**70) - 1})]
    with any_app.app_context(), recorded_statements(any_app) as seen:
        insert_rows(TASKS, rows)
        db.session.commit()
        assert read(TASKS) == by_key(rows, TASKS)
    assert seen[0].startswith("COPY tasks (" if on_postgresql(any_app) else "INSERT INTO tasks (")


def test_a_timestamp_in_another_zone_lands_as_the_same_instant(app: Flask, postgres: PostgresServer) -> None:
    kolkata = datetime(2024, 5, 6, 12, 38, 9, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    row = task_row(created_at=kolkata)
    with app.app_context():
        insert_rows(TASKS, [row])
        db.session.commit()
        (read_back,) = read(TASKS)
    assert read_back["created_at"] == kolkata and read_back["created_at"].utcoffset() is not None
    assert db_rows(postgres, "SELECT created_at AT TIME ZONE 'UTC' FROM tasks") == [(datetime(2024, 5, 6, 7, 8, 9),)]


def test_none_is_json_null_in_a_json_column_and_sql_null_where_none_as_null(
    app: Flask, postgres: PostgresServer
) -> None:
    with app.app_context():
        session_id = open_migration_session()
        insert_rows(TASKS, [task_row(pull_request=None)])
        insert_rows(LEDGER, [ledger_row(session_id, 0, source_id=None, pre_image=None)])
        db.session.commit()
    assert db_rows(postgres, "SELECT pull_request IS NULL, jsonb_typeof(pull_request) FROM tasks") == [(False, "null")]
    assert db_rows(postgres, "SELECT pre_image IS NULL, source_id IS NULL FROM migration_ledger") == [(True, True)]


def test_on_sqlite_none_is_json_null_in_a_json_column_too(tmp_path: Any) -> None:
    with sqlite_app(str(tmp_path / "bulk.sqlite")) as app, app.app_context():
        insert_rows(TASKS, [task_row(pull_request=None)])
        insert_rows(LEDGER, [ledger_row(uuid.uuid4(), 0, pre_image=None)])
        db.session.commit()
        tasks = db.session.execute(text("SELECT pull_request IS NULL, json_type(pull_request) FROM tasks")).all()
        ledger = db.session.execute(text("SELECT pre_image IS NULL FROM migration_ledger")).all()
    assert [tuple(row) for row in tasks] == [(0, "null")]
    assert [tuple(row) for row in ledger] == [(1,)]


def stored(postgres: PostgresServer) -> dict[str, list[tuple[Any, ...]]]:
    """The tasks and the ledger as PostgreSQL holds them: every column as text, and which are SQL NULL."""
    return {
        table: db_rows(postgres, f"SELECT t::text, {nulls} FROM {table} t ORDER BY {order}")
        for table, nulls, order in (
            ("tasks", "pull_request IS NULL, description IS NULL, pull_request::text", "id"),
            ("migration_ledger", "pre_image IS NULL, source_id IS NULL, pre_image::text", "index"),
        )
    }


def test_copy_stores_what_sqlalchemys_insert_stores(app: Flask, postgres: PostgresServer) -> None:
    with app.app_context():
        session_id = open_migration_session()
    tasks = [
        task_row(),
        task_row(pull_request=None, title="no PR", is_archived=True, has_changes=False),
        task_row(pull_request={"n": -(2**70) - 1, "s": "ünïcode ☃ 🐍"}, branch=None),
    ]
    ledger = [
        ledger_row(session_id, 0),
        ledger_row(session_id, 1, source_id=None, pre_image=None, version_at=NOW),
        ledger_row(session_id, 2, source_id=2**70 + 1, pre_image={"title": "before", "n": [None, 2**70]}),
        ledger_row(session_id, 3, source_id={"nested": ["id"]}, outcome="updated", warnings=[{"code": "w"}]),
    ]

    def written_by(write: Callable[[Table, list[dict[str, Any]]], Any]) -> dict[str, list[tuple[Any, ...]]]:
        with app.app_context():
            db.session.execute(delete(TASKS))
            db.session.execute(delete(LEDGER))
            write(TASKS, tasks)
            write(LEDGER, ledger)
            db.session.commit()
        return stored(postgres)

    by_copy = written_by(insert_rows)
    assert by_copy == written_by(lambda table, rows: db.session.execute(insert(table), rows))
    assert [row[1:3] for row in by_copy["tasks"]] == [(False, True)] * 3  # None: JSON null, and SQL NULL for text
    assert [row[1] for row in by_copy["migration_ledger"]] == [True, True, False, True]


@pytest.mark.parametrize(("given", "is_active"), [({"is_active": True}, True), ({}, False)], ids=["given", "left-out"])
def test_a_column_left_out_gets_its_python_default(any_app: Flask, given: dict[str, Any], is_active: bool) -> None:
    rows = [environment_row("one") | given, environment_row("two") | given]
    with any_app.app_context(), recorded_statements(any_app) as seen:
        insert_rows(ENVIRONMENTS, rows)
        db.session.commit()
        assert [row["is_active"] for row in read(ENVIRONMENTS)] == [is_active, is_active]
    assert seen[0].startswith("COPY environments (" if on_postgresql(any_app) else "INSERT INTO environments (")


def test_a_callable_default_is_called_for_each_row(any_app: Flask) -> None:
    rows = [{"user_id": user, "client_session_id": "c", "created_at": NOW, "last_active_at": NOW} for user in "abc"]
    with any_app.app_context(), recorded_statements(any_app) as seen:
        insert_rows(SESSIONS, rows)
        db.session.commit()
        sessions = read(SESSIONS)
    assert len({row["id"] for row in sessions}) == 3 and all(isinstance(row["id"], uuid.UUID) for row in sessions)
    assert {(row["status"], row["dry_run"]) for row in sessions} == {("open", False)}
    assert seen[0].startswith(
        "COPY migration_sessions (" if on_postgresql(any_app) else "INSERT INTO migration_sessions"
    )


@pytest.mark.parametrize("against", ["a-committed-row", "a-row-of-the-batch"])
def test_a_duplicate_key_raises_integrity_error_and_the_rollback_takes_the_statement_back(
    any_app: Flask, against: str
) -> None:
    first, second = task_row(title="first"), task_row(title="second")
    with any_app.app_context():
        insert_rows(TASKS, [first])
        db.session.commit()
        batch = [second, first] if against == "a-committed-row" else [second, second | {"title": "again"}]
        with pytest.raises(IntegrityError) as raised:
            insert_rows(TASKS, batch)
        db.session.rollback()
        assert [row["title"] for row in read(TASKS)] == ["first"]
        insert_rows(TASKS, [second])  # the session goes on
        db.session.commit()
        assert sorted(row["title"] for row in read(TASKS)) == ["first", "second"]
    if on_postgresql(any_app):
        assert isinstance(raised.value.orig, psycopg.errors.UniqueViolation)
        assert raised.value.statement == f"COPY tasks ({', '.join(first)}) FROM STDIN"


def test_a_connection_lost_before_the_copy_is_invalidated_and_the_next_transaction_works(
    app: Flask, postgres: PostgresServer
) -> None:
    row = task_row()
    with app.app_context():
        with before_statement(app, "COPY tasks", terminate_backend(postgres)), pytest.raises(DBAPIError) as raised:
            insert_rows(TASKS, [task_row()])
        db.session.rollback()
    assert isinstance(raised.value, OperationalError)
    assert raised.value.connection_invalidated
    assert isinstance(raised.value.orig, psycopg.OperationalError)
    with app.app_context():  # the next request
        insert_rows(TASKS, [row])
        db.session.commit()
    assert db_rows(postgres, "SELECT id FROM tasks") == [(row["id"],)]


def test_no_rows_issue_no_statement(any_app: Flask) -> None:
    with any_app.app_context(), recorded_statements(any_app) as seen:
        insert_rows(TASKS, [])
        db.session.commit()
        assert seen == []
        assert read(TASKS) == []


def test_cursor_listeners_see_the_copy_statement(app: Flask) -> None:
    heard: list[tuple[str, str, Any, bool]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        heard.append(("before", statement, parameters, executemany))

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        heard.append(("after", statement, parameters, executemany))

    rows = [task_row(), task_row()]
    with app.app_context():
        engine = db.engine
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        try:
            insert_rows(TASKS, rows)
            db.session.commit()
        finally:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
    statement = f"COPY tasks ({', '.join(rows[0])}) FROM STDIN"
    assert heard == [("before", statement, rows, True), ("after", statement, rows, True)]


@pytest.fixture
def probe(app: Flask) -> Iterator[Table]:
    """A throwaway table with a BIGINT and a plain JSON (not JSONB) column, dropped after the test."""
    table = Table(
        "bulk_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("big", BigInteger),
        Column("doc", JSON),
    )
    with app.app_context():
        table.create(db.engine)
    try:
        yield table
    finally:
        with app.app_context():
            table.drop(db.engine)


def test_a_column_type_copy_is_not_given_falls_back_to_executemany(app: Flask, probe: Table) -> None:
    rows = [{"id": 1, "big": 2**40, "doc": {"a": [1, "ü"]}}, {"id": 2, "big": -(2**62), "doc": None}]
    with app.app_context(), recorded_statements(app) as statements:
        insert_rows(probe, rows)
        db.session.commit()
        landed = db.session.execute(select(probe).order_by(probe.c.id)).mappings().all()
    assert [statement.split()[0] for statement in statements] == ["INSERT", "SELECT"]  # json has no COPY form here
    assert [dict(row) for row in landed] == rows


def test_a_bigint_column_is_copied_as_eight_bytes(app: Flask, probe: Table) -> None:
    rows = [{"id": 1, "big": 2**40}, {"id": 2, "big": -(2**62)}]  # int4 would refuse both
    with app.app_context(), recorded_statements(app) as statements:
        insert_rows(probe, rows)
        db.session.commit()
        landed = db.session.execute(select(probe.c.id, probe.c.big).order_by(probe.c.id)).mappings().all()
    assert statements[0].startswith("COPY bulk_probe (id, big)")
    assert [dict(row) for row in landed] == rows
