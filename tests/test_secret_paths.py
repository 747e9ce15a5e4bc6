"""Secrets inside records (a schema's `secret_paths`) through ingest on real PostgreSQL: encrypted in host tables,
in the generic table, in the ledger's pre-images, in the quarantine and in conflicts; never stored or shown in
clear; every record rebuilt whole."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from lsmigrate.server import LSMigrate, MigratedRecord, metadata
from lsmigrate.server.db import JsonValue
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.server.records.quarantine import decrypt_secrets, stored_raw
from lsmigrate.server.records.rows import fetch_images, source_record, stored_secrets
from lsmigrate.shared import fields
from lsmigrate.shared.canonical import digest
from lsmigrate.shared.documents import DocumentSchema
from lsmigrate.shared.envelopes import BARE
from lsmigrate.shared.mapping import RecordSchema
from lsmigrate.shared.stores import StoreCatalog, StoreSpec
from tests.migration_helpers import API, migrate
from tests.test_host_app import host_database  # noqa: F401 - the fixture

TOKEN = "tok_SECRETvalue0123456789"
REFRESH = "ref_SECRETrefresh98765"
PIN = "pin_SECRET13579"
SECRETS = (TOKEN, REFRESH, PIN)

db = SQLAlchemy()


class SpVault(MigratedRecord, db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "sp_vaults"
    data: Mapped[Any] = mapped_column(JsonValue)
    pin_hint: Mapped[str | None] = mapped_column(Text)
    pin_encrypted: Mapped[str | None] = mapped_column(Text)
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)


class SpProfile(MigratedRecord, db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "sp_profiles"
    name: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int | None]
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)


class SpBare(MigratedRecord, db.Model):  # type: ignore[name-defined, misc]
    """A table for vaults but for its secrets_encrypted."""

    __tablename__ = "sp_bare"
    data: Mapped[Any] = mapped_column(JsonValue)
    pin_hint: Mapped[str | None] = mapped_column(Text)
    pin_encrypted: Mapped[str | None] = mapped_column(Text)


class VaultSchema(DocumentSchema):
    secret_paths = ("auth.token", "session.refresh")

    pin = fields.Secret(data_key="pin")  # a top-level secret of a document: out of the document too
    updated_at = fields.Timestamp(data_key="updatedAt")  # what newest_wins compares


class ProfileSchema(RecordSchema):
    secret_paths = ("auth.token",)

    name = fields.Text(data_key="name")
    priority = fields.Integer(data_key="priority")
    updated_at = fields.Timestamp(data_key="updatedAt")


STORES = StoreCatalog(
    [
        StoreSpec(name="vaults", key="vaults", envelope=BARE, schema=VaultSchema(), table="sp_vaults"),
        StoreSpec(name="notes", key="notes", envelope=BARE, schema=VaultSchema()),  # lsmigrate's generic table
        StoreSpec(name="profiles", key="profiles", envelope=BARE, schema=ProfileSchema(), table="sp_profiles"),
    ]
)
TABLES = {"vaults": "sp_vaults", "notes": "migrated_records", "profiles": "sp_profiles"}
BOOKKEEPING = ("migration_ledger", "migration_batches", "quarantine", "migration_conflicts")


def vault(number: int, title: str, token: str = TOKEN, updated: str = "2025-01-01T00:00:00.000Z") -> dict[str, Any]:
    return {
        "id": f"v{number}",
        "title": title,
        "auth": {"token": token, "user": "ann"},
        "session": {"refresh": {"value": REFRESH, "expires": 3600}},
        "pin": PIN,
        "updatedAt": updated,
    }


@pytest.fixture
def make_app(host_database: str) -> Iterator[Callable[..., Flask]]:  # noqa: F811 - the fixture above
    made: list[Flask] = []

    def build(stores: Any = STORES, **config: Any) -> Flask:
        app = Flask(__name__)
        app.config.update(
            SECRET_KEY="s",
            SQLALCHEMY_DATABASE_URI=host_database,
            LSMIGRATE_SECRET_KEY="vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE",
        )
        app.config.update(config)
        db.init_app(app)
        made.append(app)
        LSMigrate(app, db=db, stores=stores, user_id=lambda: session.get("user"))
        app.add_url_rule("/login/<user>", "login", lambda user: session.update(user=user) or "ok")
        with app.app_context():
            db.create_all()
            metadata.create_all(db.engine)
        return app

    yield build
    for app in made:
        with app.app_context():
            db.engine.dispose()


def signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.get("/login/alice")
    return client


def rows(app: Flask, query: str) -> list[tuple[Any, ...]]:
    with app.app_context(), db.engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(query)]


def stored_text(app: Flask, *tables: str) -> str:
    """Every row of `tables` as text: what the database holds."""
    return json.dumps([rows(app, f"SELECT t::text FROM {table} t") for table in tables])


def rebuilt(app: Flask, store: str) -> list[Any]:
    """The source records the user's rows of `store` stand for, rebuilt from the rows (secrets decrypted)."""
    with app.app_context():
        state = current_lsmigrate()
        spec = state.catalog.named(store)
        model = state.model_for(spec)
        ids = [row[0] for row in db.session.execute(db.select(model.id).where(model.user_id == "alice"))]
        images = fetch_images(model, "alice", ids).values()
        records = [source_record(spec, picture, stored_secrets(spec, picture, state.box)) for picture in images]
    return sorted(records, key=lambda record: record["id"])


@pytest.mark.parametrize("store", ["vaults", "notes"])
def test_a_documents_nested_secrets_are_never_stored_in_clear_and_it_is_rebuilt_whole(make_app, store) -> None:
    app = make_app()
    client = signed_in(app)
    first = [vault(1, "Mine"), vault(2, "No secrets") | {"auth": {"user": "bob"}, "session": None}]
    _, answers, _ = migrate(client, {}, {store: first}, "first")
    assert [result["outcome"] for result in answers[0]["results"]] == ["inserted", "inserted"]
    assert rebuilt(app, store) == first
    [(data, ciphertext)] = rows(app, f"SELECT data, secrets_encrypted FROM {TABLES[store]} WHERE data->>'id' = 'v1'")
    assert data["auth"] == {"user": "ann"} and data["session"] == {} and "pin" not in data
    assert ciphertext is not None
    # A newer version overwrites the row: the ledger keeps the row's image as stored, secrets encrypted.
    second = [vault(1, "Renamed", updated="2025-02-01T00:00:00.000Z"), first[1]]
    sid, answers, _ = migrate(client, {}, {store: second}, "second")
    assert [result["outcome"] for result in answers[0]["results"]] == ["updated", "unchanged"]
    assert rows(app, "SELECT count(*) FROM migration_ledger WHERE pre_image IS NOT NULL") == [(1,)]
    assert rebuilt(app, store) == second
    assert not any(secret in stored_text(app, TABLES[store], *BOOKKEEPING) for secret in SECRETS)
    # Rolled back: the pre-image, secrets and all, is the row again.
    assert client.post(f"{API}/sessions/{sid}/rollback").status_code == 200
    assert rebuilt(app, store) == first


def test_a_typed_records_nested_secret_goes_into_its_tables_secrets_column(make_app) -> None:
    app = make_app()
    record = {"id": "p1", "name": "Ann", "priority": 2, "auth": {"token": TOKEN, "scheme": "bearer"}}
    migrate(signed_in(app), {}, {"profiles": [record]})
    [(name, extra, ciphertext)] = rows(app, "SELECT name, metadata->'extra', secrets_encrypted FROM sp_profiles")
    assert (name, extra) == ("Ann", {"auth": {"scheme": "bearer"}})
    with app.app_context():
        assert json.loads(current_lsmigrate().box.decrypt(ciphertext)) == {"auth.token": TOKEN}
    assert rebuilt(app, "profiles") == [record]
    assert TOKEN not in stored_text(app, "sp_profiles", *BOOKKEEPING)


def test_a_quarantined_records_nested_secret_is_encrypted_and_masked_when_listed(make_app) -> None:
    app = make_app()
    client = signed_in(app)
    keys = {
        "profiles": [{"id": "p1", "priority": "high", "auth": {"token": TOKEN}}],  # not an integer: refused
        "vaults": [
            vault(1, "Older"),  # superseded by the newer version below
            vault(1, "Newer", token="tok_other-0000000000", updated="2025-03-01T00:00:00.000Z"),
            vault(2, "NUL\u0000inside"),  # text no column stores: kept wrapped
        ],
    }
    sid, answers, _ = migrate(client, {}, keys)
    assert [[result["outcome"] for result in answer["results"]] for answer in answers] == [
        ["quarantined"],
        ["superseded", "inserted", "quarantined"],
    ]
    assert not any(secret in stored_text(app, "quarantine") for secret in SECRETS)
    masked = {"$masked": "…6789"}
    listed = client.get(f"{API}/sessions/{sid}/quarantine")
    assert not any(secret in listed.get_data(as_text=True) for secret in SECRETS)
    by_place = {(record["key"], record["index"]): record["raw"] for record in listed.json["records"]}
    for key, index in (("profiles", 0), ("vaults", 0), ("vaults", 2)):
        record = keys[key][index]
        shown = record | {"auth": record["auth"] | {"token": masked}}
        if key == "vaults":
            shown |= {"session": {"refresh": {"$masked": "…"}}, "pin": {"$masked": "…"}}
        assert by_place[(key, index)] == shown
    # The stored value gives the record back, secrets decrypted.
    with app.app_context():
        state = current_lsmigrate()
        for key, index, raw, reasons in rows(app, "SELECT key, index, raw, reasons FROM quarantine"):
            spec = state.catalog.spec_for_key(key)
            assert decrypt_secrets(spec, stored_raw(raw, reasons), state.box) == keys[key][index]


def test_a_conflicts_versions_show_nested_secrets_masked_and_keeping_the_server_encrypts_the_local_one(
    make_app,
) -> None:
    app = make_app(LSMIGRATE_CONFLICT_POLICIES={"vaults": "ask"})
    client = signed_in(app)
    migrate(client, {}, {"vaults": [vault(1, "Server")]}, "first")
    local = vault(1, "Local", token="tok_LOCALsecret-4444", updated="2025-05-01T00:00:00.000Z")
    sid = client.post(f"{API}/sessions", json={"client_session_id": "second"}).json["session_id"]
    batch = {"key": "vaults", "offset": 0, "records": [local], "digests": [digest(local)]}
    assert client.put(f"{API}/sessions/{sid}/batches/0", json=batch).json["results"][0]["outcome"] == "conflict"
    listed = client.get(f"{API}/sessions/{sid}/conflicts")
    [conflict] = listed.json["conflicts"]
    assert conflict["local"]["auth"]["token"] == {"$masked": "…4444"}
    assert conflict["server"]["auth"]["token"] == {"$masked": "…6789"}
    assert conflict["server"]["session"]["refresh"] == {"$masked": "…"}
    assert conflict["server"]["title"] == "Server"
    text = listed.get_data(as_text=True)
    assert not any(secret in text for secret in (*SECRETS, "tok_LOCALsecret-4444"))
    resolved = client.post(f"{API}/sessions/{sid}/conflicts/{conflict['id']}", json={"keep": "server"})
    assert resolved.json["outcome"] == "kept_server"
    [(raw,)] = rows(app, "SELECT raw FROM quarantine")
    with app.app_context():
        spec = current_lsmigrate().catalog.named("vaults")
        assert decrypt_secrets(spec, raw, current_lsmigrate().box) == local
    stored = stored_text(app, "sp_vaults", *BOOKKEEPING)
    assert not any(secret in stored for secret in (*SECRETS, "tok_LOCALsecret-4444"))


BARE_STORES = StoreCatalog(
    [StoreSpec(name="vaults", key="vaults", envelope=BARE, schema=VaultSchema(), table="sp_bare")]
)


def test_a_host_table_without_a_secrets_column_for_secret_paths_is_refused_at_start_up(make_app) -> None:
    with pytest.raises(LookupError, match="table 'sp_bare' has no column 'secrets_encrypted'"):
        make_app(BARE_STORES)
