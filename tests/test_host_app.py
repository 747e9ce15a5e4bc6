"""lsmigrate mounted in a host app (tests/host_app) on real PostgreSQL: its tables, its users, its pages."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask

from lsmigrate.server import LSMigrate
from tests.fixtures_services import PostgresServer
from tests.host_app.app import create_host_app, db
from tests.runner_helpers import FakeLocalStorage, client_sender, run

CATALOGS = {
    "python": "tests.host_app.stores:STORES",
    "toml": "tests/host_app/stores.toml",
    "json": "tests/host_app/stores.json",
}
TODOS = [
    {"id": "t1", "title": "Buy milk", "done": False, "priority": 2, "updatedAt": "2026-01-02T03:04:05.000Z"},
    {"id": "t2", "title": "Ship it", "done": "true", "priority": "3", "dueDate": 1767225600000, "tag": "work"},
    {"id": "t3", "title": "Broken", "priority": "high"},  # not an integer: quarantined, never guessed
]
NOTES = [
    {"id": "n1", "text": "Remember", "shareToken": "tok_abcdefghijklmnop"},
    {"id": "7f0c2a3e-1b2c-4d5e-8f90-0123456789ab", "text": "A UUID id, scoped by store", "pinned": True},
]
_numbers = itertools.count()
#: What a migration leaves in the host's database, timestamps of the run aside.
DUMPS = (
    "SELECT id, title, done, priority, due_date, metadata, source_digest FROM todos ORDER BY id",
    "SELECT id, store, record_id, data, metadata, source_digest FROM migrated_records ORDER BY id",
    "SELECT key, index, raw, reasons FROM quarantine ORDER BY key, index",
)


def local_storage() -> dict[str, str]:
    """The host app's localStorage: its two stores, a key of its own, and keys only the demo would claim."""
    return {
        "todo-app": json.dumps({"state": {"todos": TODOS, "filter": "all"}, "version": 2}),
        "notes": json.dumps(NOTES),
        "theme": "dark",
        "task-store": json.dumps({"state": {"tasks": [{"id": "x", "title": "Not ours"}]}, "version": 0}),
        "commentDraft": '"half a sentence"',
        "form-draft-1": json.dumps({"title": "draft"}),
    }


@pytest.fixture
def host_database(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database of the host app's, dropped afterwards."""
    name = f"host_{next(_numbers)}"
    admin = postgres.conninfo.replace("dbname=lsmigrate", "dbname=postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def host_app(host_database: str) -> Iterator[Callable[..., Flask]]:
    """host_app(stores, **config): the host app on the test's own database."""
    made: list[Flask] = []

    def build(stores: Any = CATALOGS["python"], **config: Any) -> Flask:
        made.append(create_host_app(host_database, stores, **config))
        return made[-1]

    yield build
    for app in made:
        with app.app_context():
            db.engine.dispose()


def rows(app: Flask, query: str) -> list[tuple[Any, ...]]:
    """The rows of a query on the host's database."""
    with app.app_context(), db.engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(query)]


def migrate(app: Flask, storage: FakeLocalStorage, user: str = "alice") -> dict[str, Any]:
    """One run of the page's runner against the host app, signed in as `user` by the host's cookie."""
    client = app.test_client()
    assert client.get(f"/login/{user}").status_code == 200
    from lsmigrate.shared.catalog import load_catalog

    catalog = load_catalog(app.extensions["lsmigrate"].stores_source)
    return run(storage, client_sender(client, {}, api="/tools/api/migration"), batch_size=2, catalog=catalog)


def test_a_migration_lands_in_the_hosts_table_and_in_the_generic_one(host_app) -> None:
    app = host_app()
    storage = FakeLocalStorage(local_storage())
    report = migrate(app, storage)
    assert report["state"] == "done", report.get("error")
    todos = rows(app, "SELECT title, done, priority, due_date IS NOT NULL, user_id FROM todos ORDER BY title")
    assert todos == [("Buy milk", False, 2, False, "alice"), ("Ship it", True, 3, True, "alice")]
    notes = rows(app, "SELECT store, record_id, data, secrets_encrypted IS NOT NULL FROM migrated_records ORDER BY 2")
    assert notes == [
        ("notes", "7f0c2a3e-1b2c-4d5e-8f90-0123456789ab", NOTES[1], False),
        ("notes", "n1", {"id": "n1", "text": "Remember"}, True),  # the secret kept out of `data`
    ]
    assert "tok_abcdefghijklmnop" not in json.dumps(rows(app, "SELECT * FROM migrated_records"), default=str)
    # The UUID is the record's id, not the row's: stores sharing the table never collide.
    assert rows(app, "SELECT count(*) FROM migrated_records WHERE id::text = record_id") == [(0,)]
    quarantined = rows(app, "SELECT key, raw FROM quarantine")
    assert quarantined == [("todo-app", TODOS[2])]
    # The key with a quarantined record stays; the notes key is cleaned up; the app's own keys untouched.
    assert report["keys"]["notes"]["cleaned_up"] is True
    assert report["keys"]["todo-app"]["quarantined"] == 1
    assert sorted(report["unknown_keys"]) == ["commentDraft", "form-draft-1", "task-store", "theme"]
    for key in ("theme", "task-store", "commentDraft", "form-draft-1"):
        assert storage.items[key] == local_storage()[key]


def test_a_rerun_adds_nothing_and_a_rollback_leaves_the_hosts_tables_as_they_were(host_app) -> None:
    app = host_app()
    first = migrate(app, FakeLocalStorage(local_storage()))
    again = migrate(app, FakeLocalStorage(local_storage()))
    assert again["keys"]["notes"]["unchanged"] == 2 and again["keys"]["todo-app"]["unchanged"] == 2
    assert rows(app, "SELECT count(*) FROM todos") == [(2,)]
    assert rows(app, "SELECT count(*) FROM migrated_records") == [(2,)]
    client = app.test_client()
    client.get("/login/alice")
    for session_id in (again["session_id"], first["session_id"]):
        answer = client.post(f"/tools/api/migration/sessions/{session_id}/rollback")
        assert answer.status_code == 200, answer.json
    assert rows(app, "SELECT count(*) FROM todos") == [(0,)]
    assert rows(app, "SELECT count(*) FROM migrated_records") == [(0,)]


@pytest.mark.parametrize("catalog", ["toml", "json"])
def test_a_declared_catalog_gives_the_same_rows_as_the_python_one(host_database, postgres, catalog) -> None:
    dumps = {}
    for name in ("python", catalog):
        app = create_host_app(host_database, CATALOGS[name])
        try:
            report = migrate(app, FakeLocalStorage(local_storage()))
            assert report["state"] == "done", report.get("error")
            dumps[name] = (
                rows(app, "SELECT id, title, done, priority, due_date, metadata, source_digest FROM todos ORDER BY id"),
                rows(
                    app, "SELECT id, store, record_id, data, metadata, source_digest FROM migrated_records ORDER BY id"
                ),
                rows(app, "SELECT key, index, raw, reasons FROM quarantine ORDER BY key, index"),
            )
            with app.app_context():
                for table in ("todos", "migrated_records", "quarantine", "migration_sessions"):
                    db.session.execute(db.text(f"TRUNCATE {table} CASCADE"))
                db.session.commit()
        finally:
            with app.app_context():
                db.engine.dispose()
    assert dumps[catalog] == dumps["python"]
    assert len(dumps["python"][0]) == 2 and len(dumps["python"][1]) == 2


def test_the_hosts_404_page_routes_and_json_stay_its_own(host_app) -> None:
    app = host_app()
    client = app.test_client()
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and missing.data == b"<h1>Not here</h1>"
    assert client.get("/hello").headers["X-Host-JSON"] == "1"
    # lsmigrate's own answers: its envelope, written by its own encoder.
    unsigned = client.get("/tools/api/migration/config")
    assert unsigned.status_code == 401 and unsigned.json["error"]["code"] == "not_signed_in"
    assert "X-Host-JSON" not in unsigned.headers
    client.get("/login/alice")
    answer = client.get("/tools/api/migration/sessions/00000000-0000-0000-0000-000000000000")
    assert answer.status_code == 404 and answer.json["error"]["code"] == "unknown_session"
    assert "X-Host-JSON" not in answer.headers
    assert client.get("/tools/lsmigrate/loader.js").status_code == 200
    assert client.get("/api/migration/config").status_code == 404  # only under the prefix


def test_lsmigrates_rate_limit_never_counts_the_hosts_routes(host_app) -> None:
    app = host_app(LSMIGRATE_RATELIMIT_DEFAULT="3 per minute")
    client = app.test_client()
    client.get("/login/alice")
    assert all(client.get("/hello").status_code == 200 for _ in range(10))
    answers = [client.get("/tools/api/migration/config").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = client.get("/tools/api/migration/config")
    assert limited.json["error"]["code"] == "rate_limited" and "Retry-After" in limited.headers
    assert client.get("/hello").status_code == 200


def test_a_second_init_app_is_refused(host_app) -> None:
    app = host_app()
    with pytest.raises(RuntimeError, match="lsmigrate is already initialised on app .*: init_app was called twice"):
        LSMigrate(app, db=db, stores=CATALOGS["python"])


def test_a_host_table_without_lsmigrates_columns_is_refused_at_start_up(host_database) -> None:
    flask_sqlalchemy = pytest.importorskip("flask_sqlalchemy")
    other = flask_sqlalchemy.SQLAlchemy()

    class Plain(other.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "todos"
        id = other.Column(other.Integer, primary_key=True)

    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=host_database, LSMIGRATE_SECRET_KEY="vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE")
    other.init_app(app)
    with pytest.raises(LookupError, match=r"store 'todos': table 'todos' lacks lsmigrate's columns \['created_at'"):
        LSMigrate(app, db=other, stores=CATALOGS["toml"])


def test_mounted_without_a_secret_key_it_refuses_to_start() -> None:
    app = Flask(__name__)
    with pytest.raises(RuntimeError, match="LSMIGRATE_SECRET_KEY is not set"):
        LSMigrate(app, db=db, stores=CATALOGS["json"])


def test_a_user_loader_that_returns_no_string_is_a_server_error_not_a_guess(host_app) -> None:
    app = host_app()
    app.extensions["lsmigrate"].user_loader = lambda: 42
    app.testing = False
    answer = app.test_client().get("/tools/api/migration/config")
    assert answer.status_code == 500


def test_a_host_table_missing_a_fields_column_is_refused_at_start_up(host_database, tmp_path) -> None:
    catalog = json.loads((Path(__file__).parent / "host_app" / "stores.json").read_text())
    catalog["stores"][0]["fields"]["estimate"] = "number"  # no such column in the host's todos table
    path = tmp_path / "stores.json"
    path.write_text(json.dumps(catalog))
    with pytest.raises(LookupError, match=r"store 'todos': table 'todos' has no column 'estimate'"):
        create_host_app(host_database, str(path))
