"""Which integrity errors are a concurrent writer's collision (retried) and which are bugs (raised), by error code."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError

from lsmigrate.server.ingest import _is_collision


@pytest.mark.parametrize(
    ("statement", "collision"),
    [
        ("INSERT INTO t VALUES (2, 'taken')", True),  # a unique constraint
        ("INSERT INTO t VALUES (1, 'other')", True),  # the primary key
        ("INSERT INTO t VALUES (3, NULL)", False),  # NOT NULL: a row built wrong, never a race
    ],
)
def test_sqlite_integrity_errors_are_told_apart_by_their_code(statement: str, collision: bool) -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        connection.exec_driver_sql("INSERT INTO t VALUES (1, 'taken')")
        with pytest.raises(IntegrityError) as caught:
            connection.exec_driver_sql(statement)
    assert _is_collision(caught.value) is collision
