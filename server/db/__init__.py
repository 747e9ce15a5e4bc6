"""The package of storage: lsmigrate's declarative base and column types, and the database it works in.

The bottom of a batch's path. Beside what is here: `models` (lsmigrate's own tables), `copy`
(binary COPY of many rows) and `sql` (`= ANY` over a batch's values).

Models of lsmigrate's tables derive from `Base`, whose `metadata` is lsmigrate's
own: a host app adds it to its Alembic `target_metadata`. The database session
is the one of the `db` the app's lsmigrate was given (`db` here stands for it),
so a batch's rows, in the host's tables or lsmigrate's, commit with its ledger.
`standalone_db` is the Flask-SQLAlchemy instance of lsmigrate's own service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, DateTime, Dialect, MetaData, Table, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from werkzeug.local import LocalProxy

# JSON is JSONB on PostgreSQL; datetimes are always timezone-aware.
JsonValue = JSON().with_variant(JSONB(), "postgresql")


class Moment(TypeDecorator[datetime]):
    """A timestamptz that always reads back aware and in UTC, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of lsmigrate's own tables, on lsmigrate's own MetaData."""

    metadata = MetaData()
    if TYPE_CHECKING:
        # Each model here is mapped to a Table (DeclarativeBase declares any FromClause).
        __table__: ClassVar[Table]


def _app_db() -> Any:
    from lsmigrate.server.extension import current_lsmigrate

    return current_lsmigrate().db


if TYPE_CHECKING:
    db: SQLAlchemy
else:
    #: The current app's lsmigrate database (the host's `db`, or the standalone service's).
    db = LocalProxy(_app_db)
standalone_db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()
