"""Building protocol bodies and calling the protocol in tests; reading the database behind the app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from lsmigrate.demo.models import DemoBase
from lsmigrate.server import create_app
from lsmigrate.server.api.auth import issue_token
from lsmigrate.server.db import db
from lsmigrate.shared.canonical import digest, manifest_digest
from lsmigrate.shared.keys import SplitKey, split_key
from lsmigrate.shared.stores import StoreCatalog
from tests.fixtures_services import PostgresServer, free_port

API = "/api/migration"
TOKEN = "ghp_TOPSECRETtokenvalue0123456789"
#: The tables of migrated records, for dumps that must compare equal.
DUMPED_TABLES = ("tasks", "environments", "form_drafts", "user_preferences")
#: Every table the app writes.
ALL_TABLES = (
    *DUMPED_TABLES,
    "migration_sessions",
    "migration_batches",
    "migration_ledger",
    "quarantine",
    "migration_conflicts",
    "migration_remainders",
)


def batch_body(key: str, records: list[Any], offset: int = 0) -> dict[str, Any]:
    """A PUT /batches body for `records` of `key` starting at `offset`."""
    return {"key": key, "offset": offset, "records": records, "digests": [digest(r) for r in records]}


def key_value(catalog: StoreCatalog, key: str, records: list[Any]) -> str:
    """The text of a key whose (first) store holds `records` and nothing else, as its envelope writes it."""
    spec = catalog.stores_for_key(key)[0]
    container = records[0] if spec.shape in ("one", "scalar") and records else records
    tree: Any = container
    for step in reversed((*spec.envelope.state_path, *spec.steps)):
        assert isinstance(step, str), "key_value builds keys of plain paths"
        tree = {step: tree}
    if spec.envelope.version_path:
        tree = {**tree, spec.envelope.version_path[0]: _nest(spec.envelope.version_path[1:], spec.version)}
    return spec.envelope.write(tree)


def _nest(path: tuple[str, ...], value: Any) -> Any:
    return value if not path else {path[0]: _nest(path[1:], value)}


def whole_key(catalog: StoreCatalog, key: str, records: list[Any]) -> SplitKey:
    """The key `key_value` writes, read whole."""
    return split_key(key, key_value(catalog, key, records), catalog.stores_for_key(key))


def manifest_entry(records: list[Any], catalog: StoreCatalog | None = None, key: str | None = None) -> dict[str, Any]:
    """The manifest entry of a key holding `records` (its remainder too, when the catalog and key are given)."""
    digests = [digest(r) for r in records]
    if catalog is None or key is None:
        return {"count": len(records), "digest": manifest_digest(digests)}
    return whole_key(catalog, key, records).manifest(digests)


def catalog_of(client: FlaskClient) -> StoreCatalog:
    """The store catalog of the app behind a test client."""
    catalog: StoreCatalog = client.application.extensions["lsmigrate"].catalog
    return catalog


def put_remainder(client: FlaskClient, headers: dict[str, str], sid: str, key: str, records: list[Any]) -> Any:
    """PUT the remainder of the key `key_value` writes for `records`; the response."""
    remainder = whole_key(catalog_of(client), key, records).remainder
    return client.put(f"{API}/sessions/{sid}/remainders", json={"key": key, "remainder": remainder}, headers=headers)


def open_session(
    client: FlaskClient,
    headers: dict[str, str],
    client_id: str = "client-1",
    *,
    dry_run: bool = False,
    stores_version: str | None = None,
) -> str:
    """POST /sessions; the session id."""
    body: dict[str, Any] = {"client_session_id": client_id}
    if dry_run:
        body["dry_run"] = True
    if stores_version is not None:
        body["stores_version"] = stores_version
    response = client.post(f"{API}/sessions", json=body, headers=headers)
    assert response.status_code in (200, 201), response.json
    return str(response.json["session_id"])


def put(client: FlaskClient, headers: dict[str, str], sid: str, seq: int, body: dict[str, Any]) -> Any:
    """PUT one batch; the response."""
    return client.put(f"{API}/sessions/{sid}/batches/{seq}", json=body, headers=headers)


def complete(client: FlaskClient, headers: dict[str, str], sid: str, keys: dict[str, list[Any]]) -> Any:
    """PUT each key's remainder, then POST /complete with the manifest of `keys` (key -> its records); the
    response of /complete."""
    catalog = catalog_of(client)
    for key, records in keys.items():
        if catalog.stores_for_key(key):
            put_remainder(client, headers, sid, key, records)
    manifest = {
        key: manifest_entry(records, catalog, key) if catalog.stores_for_key(key) else manifest_entry(records)
        for key, records in keys.items()
    }
    return client.post(f"{API}/sessions/{sid}/complete", json={"manifest": manifest}, headers=headers)


def migrate(
    client: FlaskClient,
    headers: dict[str, str],
    keys: dict[str, list[Any]],
    client_id: str = "client-1",
    *,
    dry_run: bool = False,
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """One whole session, one batch per key: (session id, batch responses, the complete answer)."""
    sid = open_session(client, headers, client_id, dry_run=dry_run)
    answers = []
    for seq, (key, records) in enumerate(keys.items()):
        response = put(client, headers, sid, seq, batch_body(key, records))
        assert response.status_code == 200, response.json
        answers.append(response.json)
    verdict = complete(client, headers, sid, keys)
    assert verdict.status_code == 200, verdict.json
    return sid, answers, dict(verdict.json)


def db_rows(postgres: PostgresServer, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a query, on a connection of its own."""
    with psycopg.connect(postgres.conninfo) as connection:
        return connection.execute(query, params or None).fetchall()


def dump(postgres: PostgresServer, tables: tuple[str, ...] = DUMPED_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of `tables`, every column, in key order: equal dumps mean equal contents."""
    return {table: db_rows(postgres, f"SELECT * FROM {table} ORDER BY 1, 2, 3") for table in tables}


@contextmanager
def before_statement(app: Flask, prefix: str, action: Callable[[Any], None], *, times: int = 1) -> Iterator[None]:
    """Run `action(dbapi_cursor)` just before the app's next `times` statements that start with `prefix`."""
    remaining = [times]

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if remaining[0] > 0 and statement.lstrip().upper().startswith(prefix.upper()):
            remaining[0] -= 1
            action(cursor)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)


def terminate_backend(postgres: PostgresServer) -> Callable[[Any], None]:
    """An action that kills the cursor's PostgreSQL backend from another connection, and waits until it is gone."""

    def kill(cursor: Any) -> None:
        pid = cursor.connection.info.backend_pid
        with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
            assert connection.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)

    return kill


@contextmanager
def colliding_ledger_row(app: Flask, postgres: PostgresServer, sid: str) -> Iterator[None]:
    """Before each ledger insert another writer commits ledger row (sid, task-store, 0), gone again at the rollback."""

    def add(cursor: Any) -> None:
        with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
            connection.execute(
                "INSERT INTO migration_ledger (session_id, user_id, key, index, batch_seq, digest, outcome, warnings)"
                " VALUES (%s, (SELECT user_id FROM migration_sessions WHERE id = %s), 'task-store', 0, 99, %s,"
                " 'unchanged', '[]')",
                (sid, sid, "0" * 64),
            )

    def remove(_connection: Any) -> None:
        with psycopg.connect(postgres.conninfo, autocommit=True) as connection:
            connection.execute("DELETE FROM migration_ledger WHERE batch_seq = 99")

    with app.app_context():
        engine = db.engine
    event.listen(engine, "rollback", remove)
    try:
        with before_statement(app, "COPY migration_ledger", add, times=100):
            yield
    finally:
        event.remove(engine, "rollback", remove)


@contextmanager
def unreachable_app() -> Iterator[tuple[FlaskClient, dict[str, str]]]:
    """(a test client, a valid Authorization header) of an app whose PostgreSQL is not there."""
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/lsmigrate",
            "SECRET_KEY": "test-secret-key",
            "DEMO": True,
        }
    )
    with app.app_context():
        headers = {"Authorization": f"Bearer {issue_token('alice')}"}
    try:
        yield app.test_client(), headers
    finally:
        with app.app_context():
            db.engine.dispose()


@contextmanager
def sqlite_app(filename: str) -> Iterator[Flask]:
    """An app on a new SQLite database in `filename`, its tables made by `db.create_all()`."""
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{filename}",
            "SECRET_KEY": "test-secret-key",
            "DEMO": True,
        }
    )
    with app.app_context():
        db.create_all()
        DemoBase.metadata.create_all(db.engine)
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()


@contextmanager
def recorded_statements(app: Flask) -> Iterator[list[str]]:
    """The statements the app's engine runs inside the block, in order, as `before_cursor_execute` sees them."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
