"""Date-only fields (`fields.Date`) written into a host's Date and timestamptz columns on real PostgreSQL: the
day kept whatever the session's time zone, overwritten with its pre-image in the ledger, rolled back, rebuilt."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Date as DateColumn
from sqlalchemy import DateTime, Text
from sqlalchemy.orm import Mapped, mapped_column

from lsmigrate.server import LSMigrate, MigratedRecord, metadata
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.records.rows import fetch_images, source_record, stored_secrets
from lsmigrate.shared import fields
from lsmigrate.shared.envelopes import BARE
from lsmigrate.shared.mapping import RecordSchema
from lsmigrate.shared.stores import StoreCatalog, StoreSpec
from tests.migration_helpers import API, migrate
from tests.test_host_app import host_database  # noqa: F401 - the fixture

db = SQLAlchemy()


class SdEvent(MigratedRecord, db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "sd_events"
    title: Mapped[str | None] = mapped_column(Text)
    day: Mapped[date | None] = mapped_column(DateColumn)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EventSchema(RecordSchema):
    title = fields.Text(data_key="title")
    day = fields.Date(data_key="day")
    due_at = fields.Date(data_key="dueAt")  # a date into a timestamptz column: its midnight UTC
    updated_at = fields.Timestamp(data_key="updatedAt")


STORES = StoreCatalog([StoreSpec(name="events", key="events", envelope=BARE, schema=EventSchema(), table="sd_events")])
EVENTS = [
    {
        "id": "e1",
        "title": "Launch",
        "day": "2025-06-09",
        "dueAt": "2025-06-09",
        "updatedAt": "2025-01-01T00:00:00.000Z",
    },
    {"id": "e2", "title": "Late", "day": "2025-06-09T23:30:00.000-02:00", "dueAt": 1749427200000},
    {"id": "e3", "title": "Never", "day": "2025-02-30"},
]


@pytest.fixture
def app(host_database: str) -> Iterator[Flask]:  # noqa: F811 - the fixture above
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="s",
        SQLALCHEMY_DATABASE_URI=host_database,
        # A session time zone other than UTC: a naive midnight would be read in it.
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"options": "-c timezone=America/New_York"}},
        LSMIGRATE_SECRET_KEY="vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE",
    )
    db.init_app(app)
    LSMigrate(app, db=db, stores=STORES, user_id=lambda: session.get("user"))
    app.add_url_rule("/login/<user>", "login", lambda user: session.update(user=user) or "ok")
    with app.app_context():
        db.create_all()
        metadata.create_all(db.engine)
    yield app
    with app.app_context():
        db.engine.dispose()


def signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.get("/login/alice")
    return client


def events(app: Flask) -> dict[str, tuple[Any, ...]]:
    """The user's events by title: (day, due_at)."""
    with app.app_context():
        found = db.session.execute(db.select(SdEvent.title, SdEvent.day, SdEvent.due_at).order_by(SdEvent.title))
        return {title: (day, due_at) for title, day, due_at in found}


def rebuilt(app: Flask) -> list[Any]:
    with app.app_context():
        state = current_lsmigrate()
        spec = state.catalog.named("events")
        ids = [row[0] for row in db.session.execute(db.select(SdEvent.id))]
        images = fetch_images(SdEvent, "alice", ids).values()
        records = [source_record(spec, picture, stored_secrets(spec, picture, state.box)) for picture in images]
    return sorted(records, key=lambda record: record["id"])


def test_a_date_is_written_as_that_day_kept_through_an_overwrite_and_a_rollback(app) -> None:
    client = signed_in(app)
    _, answers, _ = migrate(client, {}, {"events": EVENTS}, "first")
    [first, second, third] = answers[0]["results"]
    assert [first["outcome"], second["outcome"], third["outcome"]] == ["inserted", "inserted", "quarantined"]
    assert {"code": "date_from_timestamp", "field": "day"} in second["warnings"]
    assert {"code": "date_epoch_ms", "field": "dueAt"} in second["warnings"]
    assert third["reasons"] == [
        {
            "code": "wrong_type",
            "field": "day",
            "message": "expected a date (YYYY-MM-DD, an ISO 8601 time or epoch milliseconds), found string",
        }
    ]
    midnight = datetime(2025, 6, 9, tzinfo=UTC)
    assert events(app) == {"Launch": (date(2025, 6, 9), midnight), "Late": (date(2025, 6, 10), midnight)}
    assert rebuilt(app) == EVENTS[:2]
    # A newer version overwrites e1: the ledger keeps the row's image, its dates as ISO text.
    moved = EVENTS[0] | {"day": "2025-07-01", "dueAt": "2025-07-02", "updatedAt": "2025-02-01T00:00:00.000Z"}
    sid, answers, _ = migrate(client, {}, {"events": [moved]}, "second")
    assert answers[0]["results"][0]["outcome"] == "updated"
    with app.app_context(), db.engine.connect() as connection:
        [pre_image] = connection.exec_driver_sql("SELECT pre_image FROM migration_ledger WHERE pre_image IS NOT NULL")
    assert (pre_image[0]["day"], datetime.fromisoformat(pre_image[0]["due_at"])) == ("2025-06-09", midnight)
    assert events(app)["Launch"] == (date(2025, 7, 1), datetime(2025, 7, 2, tzinfo=UTC))
    assert client.post(f"{API}/sessions/{sid}/rollback").status_code == 200
    assert events(app)["Launch"] == (date(2025, 6, 9), midnight)
    assert rebuilt(app) == EVENTS[:2]
