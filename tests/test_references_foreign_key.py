"""A reference into a host table with a foreign key: referenced rows written first, a missing one NULL (never a
refused batch), the original kept."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, session
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from lsmigrate.server import LSMigrate, MigratedRecord, metadata
from lsmigrate.shared.catalog import load_catalog
from lsmigrate.shared.ids import derived_id
from tests.runner_helpers import FakeLocalStorage, client_sender, run
from tests.test_host_app import host_database  # noqa: F401 - the fixture

db = SQLAlchemy()


class FkProject(MigratedRecord, db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "fk_projects"
    name: Mapped[str | None] = mapped_column(Text)


class FkItem(MigratedRecord, db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "fk_items"
    title: Mapped[str | None] = mapped_column(Text)
    project_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("fk_projects.id"))


CATALOG = {
    "stores": [
        {"name": "items", "key": "items", "envelope": "bare", "table": "fk_items",
         "fields": {"title": "text", "projectId": "text"}, "references": {"projectId": "projects"}},
        {"name": "projects", "key": "projects", "envelope": "bare", "table": "fk_projects", "fields": {"name": "text"}},
    ]
}  # fmt: skip


@pytest.fixture
def app(host_database: str, tmp_path: Path) -> Iterator[Flask]:  # noqa: F811 - the fixture above
    path = tmp_path / "stores.json"
    path.write_text(json.dumps(CATALOG))
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="s", SQLALCHEMY_DATABASE_URI=host_database, LSMIGRATE_SECRET_KEY="vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE"
    )
    app.config["STORES_FILE"] = str(path)  # the same catalog for the page
    db.init_app(app)
    LSMigrate(app, db=db, stores=str(path), user_id=lambda: session.get("user"))
    app.add_url_rule("/login/<user>", "login", lambda user: session.update(user=user) or "ok")
    with app.app_context():
        db.create_all()
        metadata.create_all(db.engine)
    yield app
    with app.app_context():
        db.engine.dispose()


def migrate(app: Flask, items: dict[str, list[Any]], user: str = "alice") -> dict[str, Any]:
    client = app.test_client()
    client.get(f"/login/{user}")
    storage = FakeLocalStorage({key: json.dumps(records) for key, records in items.items()})
    return run(storage, client_sender(client, {}), catalog=load_catalog(app.config["STORES_FILE"]))


def rows(app: Flask, query: str) -> list[tuple[Any, ...]]:
    with app.app_context(), db.engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(query)]


def test_the_referenced_rows_go_first_and_the_foreign_key_holds(app) -> None:
    report = migrate(app, {"items": [{"id": "i1", "title": "Plan", "projectId": "p1"}], "projects": [{"id": "p1"}]})
    assert report["state"] == "done", report.get("error")
    [(project_id,)] = rows(app, "SELECT id FROM fk_projects")
    assert rows(app, "SELECT project_id, metadata->'original'->>'projectId' FROM fk_items") == [(project_id, "p1")]


def test_a_missing_referenced_row_is_null_with_a_warning_and_the_original_kept(app) -> None:
    report = migrate(app, {"items": [{"id": "i1", "title": "Orphan", "projectId": "gone"}]})
    assert report["state"] == "done", report.get("error")
    assert report["keys"]["items"]["inserted"] == 1
    assert rows(app, "SELECT project_id, metadata->'original'->>'projectId' FROM fk_items") == [(None, "gone")]
    [(warnings,)] = rows(app, "SELECT warnings FROM migration_ledger")
    assert {"code": "reference_unresolved", "field": "projectId", "store": "projects"} in warnings


def test_a_reference_to_a_record_whose_id_another_user_took_first_follows_the_record(app) -> None:
    """Bob takes the row id alice's project derives to; her item's reference still finds her project (at its
    relocated id), never bob's row, and is not left unresolved; her key gives back what she wrote."""
    taken = derived_id("alice", "projects", "p1")
    assert migrate(app, {"projects": [{"id": taken, "name": "Bob's"}]}, user="bob")["state"] == "done"
    item = {"id": "i1", "title": "Plan", "projectId": "p1"}
    report = migrate(app, {"items": [item], "projects": [{"id": "p1", "name": "Launch"}]})
    assert report["state"] == "done", report.get("error")
    [(project,)] = rows(app, "SELECT id::text FROM fk_projects WHERE user_id = 'alice'")
    assert project != taken
    [(reference, meta)] = rows(app, "SELECT project_id::text, metadata FROM fk_items")
    assert reference == project
    assert meta["original"]["projectId"] == "p1"
    [(warnings,)] = rows(app, "SELECT warnings FROM migration_ledger WHERE key = 'items'")
    assert not [w for w in warnings if w["code"] == "reference_unresolved"]
    client = app.test_client()
    client.get("/login/alice")
    given = client.get("/api/migration/keys/items").json
    assert (json.loads(given["value"]), given["as_verified"]) == ([item], True)
