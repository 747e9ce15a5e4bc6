"""among: `= ANY(array)` on PostgreSQL, `IN` on SQLite, the same rows either way."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Table, insert, select

from lsmigrate.demo.models import Task
from lsmigrate.server.db import db
from lsmigrate.server.db.sql import among
from tests.migration_helpers import recorded_statements, sqlite_app

TASKS: Table = Task.__table__
NOW = datetime(2024, 1, 1, tzinfo=UTC)
IDS = [uuid.UUID(int=n) for n in range(1, 6)]


def add_tasks(ids: list[uuid.UUID], user_id: str = "alice") -> None:
    """Commit one task for each of `ids`."""
    rows = [
        {
            "id": task_id,
            "user_id": user_id,
            "metadata": {},
            "source_digest": "0" * 64,
            "created_at": NOW,
            "updated_at": NOW,
            "title": f"task {task_id.int}",
            "status": "pending",
            "priority": "medium",
            "is_archived": False,
            "has_changes": False,
        }
        for task_id in ids
    ]
    db.session.execute(insert(TASKS), rows)
    db.session.commit()


def found(values: Any, column: Any = TASKS.c.id) -> list[Any]:
    """The ids of the tasks whose `column` is among `values`."""
    return sorted(db.session.scalars(select(TASKS.c.id).where(among(column, values))))


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ([], []),
        ([IDS[0]], [IDS[0]]),
        ([IDS[4], IDS[0], IDS[2]], [IDS[0], IDS[2], IDS[4]]),
        (IDS, IDS),
        ([IDS[1], uuid.UUID(int=99), IDS[1]], [IDS[1]]),  # a missing id and a repeated one
        ([uuid.UUID(int=99)], []),
    ],
    ids=["none", "one", "some", "all", "missing-and-repeated", "only-missing"],
)
def test_among_finds_exactly_the_rows_asked_for(any_app: Flask, wanted: list[uuid.UUID], expected: Any) -> None:
    with any_app.app_context():
        add_tasks(IDS)
        assert found(wanted) == expected
        assert found(iter(wanted)) == expected  # any iterable


def test_among_takes_the_columns_type(any_app: Flask) -> None:
    with any_app.app_context():
        add_tasks(IDS[:2], "alice")
        add_tasks(IDS[2:], "bob")
        assert found(["bob", "carol"], TASKS.c.user_id) == IDS[2:]
        assert found([], TASKS.c.user_id) == []


def test_on_postgresql_the_statement_text_is_the_same_for_3_and_500_ids(app: Flask) -> None:
    many = [uuid.uuid4() for _ in range(497)] + IDS[:3]
    with app.app_context(), recorded_statements(app) as seen:
        add_tasks(IDS)
        seen.clear()
        assert found(IDS[:3]) == IDS[:3]
        assert found(many) == IDS[:3]
    assert len(seen) == 2 and seen[0] == seen[1]
    assert "tasks.id = ANY (" in seen[0]


def test_on_sqlite_it_is_a_plain_in(tmp_path: Any) -> None:
    with sqlite_app(str(tmp_path / "sets.sqlite")) as app, app.app_context(), recorded_statements(app) as seen:
        add_tasks(IDS)
        seen.clear()
        assert found(IDS[:3]) == IDS[:3]
    assert len(seen) == 1 and " IN (" in seen[0]
