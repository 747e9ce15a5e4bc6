"""`complete`'s check that every record is held by its row stays one probe per record when the planner's
statistics predate the user's rows (a new user's first session: issue 14's 4 s stall in verify)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import event

from lsmigrate.server.db import db
from lsmigrate.server.db.models import MigrationSession
from lsmigrate.server.sessions.verify import _records_not_held
from tests.fixtures_services import PostgresServer
from tests.migration_helpers import batch_body, complete, open_session, put

RECORDS = 600


def tasks(user: str) -> list[dict[str, Any]]:
    return [{"id": f"{user}-{i}", "title": f"Task {i}"} for i in range(RECORDS)]


def _rows_read(plan: dict[str, Any], relation: str) -> float:
    """Rows the plan's scans of `relation` returned, over all their loops."""
    found = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) if plan.get("Relation Name") == relation else 0
    return found + sum(_rows_read(child, relation) for child in plan.get("Plans", []))


def test_the_held_check_probes_each_row_once_even_with_statistics_from_before_the_users_rows(
    app: Flask, client: Any, auth: Any, postgres: PostgresServer
) -> None:
    alice = auth("alice")
    sid = open_session(client, alice)
    assert put(client, alice, sid, 0, batch_body("task-store", tasks("alice"))).status_code == 200
    assert complete(client, alice, sid, {"task-store": tasks("alice")}).status_code == 200
    with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
        connection.execute("ANALYZE tasks; ANALYZE migration_ledger")  # statistics that know alice only
    bob = auth("bob")
    sid = open_session(client, bob)
    assert put(client, bob, sid, 0, batch_body("task-store", tasks("bob"))).status_code == 200

    with app.app_context():
        session = db.session.get(MigrationSession, ("bob", uuid.UUID(sid)))
        connection = db.session.connection()
        # The planner's choice when it believes the session has one ledger row: a nested loop.
        connection.exec_driver_sql("SET LOCAL enable_hashjoin = off")
        connection.exec_driver_sql("SET LOCAL enable_mergejoin = off")
        seen: list[tuple[str, Any]] = []

        def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
            if statement.startswith("SELECT migration_ledger.index") and "tasks" in statement:
                seen.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", keep)
        try:
            assert _records_not_held(session, "task-store") == []
        finally:
            event.remove(db.engine, "before_cursor_execute", keep)
        [(statement, parameters)] = seen
        explained = connection.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar()
        db.session.rollback()
    plan = (explained if isinstance(explained, list) else json.loads(explained))[0]["Plan"]
    assert _rows_read(plan, "tasks") <= 2 * RECORDS, json.dumps(plan, indent=1)[:3000]
