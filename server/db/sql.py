"""`column IN (…)` over a batch's worth of values, as one parameter on PostgreSQL.

SQLAlchemy writes `IN` with one placeholder per value, so the text of the
statement changes with the batch's size and psycopg parses it afresh every
time (a millisecond or more for 500 ids). `= ANY(array)` is one parameter:
the same text every time, the same plan, and psycopg sends the array in
binary. Elsewhere (SQLite) it is the plain `IN`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

from lsmigrate.server.db import db


def among(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """The condition that `column` holds one of `values`."""
    wanted = list(values)
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, wanted, type_=ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(wanted)  # type: ignore[no-any-return]
