"""The ingest benchmark's yardstick: psycopg binary COPY of the rows the HTTP path wrote.

`task_rows` maps the records with the shared store spec and builds the rows
the ingest inserts into `tasks` (the mapped columns, plus id, owner, source
digest, session and the two dates as timestamps). `copy_rows` times one
binary COPY of them into the same table, on one connection, in one
transaction, with psycopg dumping the values (its CPU is the client's).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from bench.ingest_load import KEY
from lsmigrate.demo.stores import STORES

TABLE = "tasks"


def task_rows(user: str, session_id: str, records: list[Any]) -> list[dict[str, Any]]:
    """The `tasks` rows the ingest writes for `user`'s records, as column -> value."""
    spec = STORES.named("tasks")
    rows = []
    for mapped in spec.map(records, key=KEY, user_id=user, migrated_at=datetime.now(UTC)):
        if mapped.row is None:
            raise ValueError(f"record {mapped.index} was quarantined: {mapped.reasons}")
        row = dict(mapped.row)
        row["id"] = uuid.UUID(row["id"])
        row["created_at"] = datetime.fromisoformat(row["created_at"])
        row["updated_at"] = datetime.fromisoformat(row["updated_at"])
        row["user_id"] = user
        row["source_digest"] = mapped.digest
        row["migration_session_id"] = uuid.UUID(session_id)
        rows.append(row)
    return rows


@dataclass
class CopyTiming:
    """One COPY: wall seconds and the copying process's CPU seconds."""

    wall: float
    client_cpu: float


def _column_types(connection: psycopg.Connection, columns: list[str]) -> list[int]:
    query = (
        "SELECT attname, atttypid::int FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
    )
    types: dict[str, int] = dict(connection.execute(query, (TABLE,)).fetchall())
    return [types[column] for column in columns]


def copy_rows(conninfo: str, rows: list[dict[str, Any]]) -> CopyTiming:
    """Time a binary COPY of `rows` into `tasks` (which the caller has emptied), commit included."""
    columns = list(rows[0])
    values = [tuple(row[column] for column in columns) for row in rows]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(TABLE), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with psycopg.connect(conninfo) as connection:
        types = _column_types(connection, columns)
        connection.commit()
        cpu, wall = time.process_time(), time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            for value in values:
                copy.write_row(value)
        connection.commit()
        timing = CopyTiming(wall=time.perf_counter() - wall, client_cpu=time.process_time() - cpu)
        counted = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(TABLE))).fetchone()
    if counted is None or counted[0] != len(rows):
        raise RuntimeError(f"COPY left {counted} rows in {TABLE}, expected {len(rows)}")
    return timing
