"""The extension's start-up refusals, and the rules it keeps for every app: stores versions, cleanup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from lsmigrate.server import LSMigrate, create_app
from lsmigrate.server.extension import current_lsmigrate
from lsmigrate.shared.declared import CatalogError
from tests.host_app.app import db
from tests.migration_helpers import db_rows, open_session
from tests.runner_helpers import FakeLocalStorage, client_sender, run


def standalone(tmp_path: Path, **config: Any) -> Flask:
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "SECRET_KEY": "vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE",
            **config,
        }
    )


def test_a_service_with_no_stores_refuses_to_start(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="lsmigrate has no stores: set LSMIGRATE_STORES"):
        standalone(tmp_path)


@pytest.mark.parametrize(
    ("stores", "message"),
    [
        ("todos", r"stores: expected 'package.module:ATTRIBUTE' or the path of a .json or .toml file, found 'todos'"),
        ("no.such.module:STORES", r"stores 'no.such.module:STORES': cannot import no.such.module"),
        ("tests.host_app.stores:MISSING", r"tests.host_app.stores has no attribute 'MISSING'"),
        ("tests.host_app.stores:TodoSchema", r"expected a StoreCatalog or a non-empty sequence of StoreSpec, found"),
        ("tests/host_app/missing.toml", r"tests/host_app/missing.toml"),
        ("tests/host_app/stores.yaml", r"expected 'package.module:ATTRIBUTE' or the path of a .json or .toml file"),
    ],
)
def test_a_stores_setting_that_names_no_catalog_is_a_precise_start_up_error(tmp_path, stores, message) -> None:
    with pytest.raises(CatalogError, match=message):
        standalone(tmp_path, STORES=stores)


def test_a_broken_catalog_file_names_the_file_the_store_and_the_setting(tmp_path) -> None:
    path = tmp_path / "stores.json"
    path.write_text(json.dumps({"stores": [{"name": "todos", "key": "todos", "shape": "rows"}]}))
    expected = "stores.json: store 'todos': setting 'shape': expected one of array, by_id, entity_adapter, entries"
    with pytest.raises(CatalogError, match=expected):
        standalone(tmp_path, STORES=str(path))


@pytest.mark.parametrize("prefix", ["tools", "/tools/", "//x/"])
def test_a_url_prefix_must_start_with_a_slash_and_not_end_with_one(prefix) -> None:
    app = Flask(__name__)
    app.config["LSMIGRATE_SECRET_KEY"] = "vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE"
    with pytest.raises(ValueError, match="url_prefix must start with '/' and not end with one"):
        LSMigrate(app, db=db, stores="tests.host_app.stores:STORES", url_prefix=prefix)


def test_an_app_without_lsmigrate_says_so() -> None:
    with Flask(__name__).app_context(), pytest.raises(RuntimeError, match="lsmigrate is not initialised on this app"):
        current_lsmigrate()


def test_a_page_with_other_stores_is_refused_when_it_opens_a_session(client, auth, postgres) -> None:
    headers = auth("alice")
    answer = client.post(
        "/api/migration/sessions", json={"client_session_id": "c1", "stores_version": "0" * 64}, headers=headers
    )
    assert answer.status_code == 409 and answer.json["error"]["code"] == "stores_version_mismatch"
    assert answer.json["error"]["details"]["page"] == "0" * 64
    assert db_rows(postgres, "SELECT count(*) FROM migration_sessions") == [(0,)]
    version = client.get("/api/migration/config", headers=headers).json["stores_version"]
    assert open_session(client, headers, "c1", stores_version=version)


def test_a_store_whose_cleanup_is_keep_keeps_its_key_after_verification(make_app, auth, tmp_path) -> None:
    path = tmp_path / "stores.json"
    path.write_text(json.dumps({"stores": [{"name": "notes", "key": "notes", "envelope": "bare", "cleanup": "keep"}]}))
    app = make_app(None, DEMO=False, STORES=str(path))
    from lsmigrate.shared.catalog import load_catalog

    storage = FakeLocalStorage({"notes": json.dumps([{"id": 1, "text": "kept"}])})
    report = run(storage, client_sender(app.test_client(), auth("alice")), catalog=load_catalog(str(path)))
    assert report["state"] == "done", report.get("error")
    assert report["keys"]["notes"]["inserted"] == 1
    assert report["keys"]["notes"]["kept"] == {"reason": "store_keeps_key", "outcomes": {}}
    assert "notes" in storage.items


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        ("https://app.example/", "is not an origin"),
        ("app.example", "is not an origin"),
        ("*, https://app.example", "cannot be listed with others"),
        ("ftp://app.example", "is not an origin"),
        (42, "expected origins separated by commas"),
    ],
)
def test_cors_origins_are_parsed_strictly(tmp_path, origins, message) -> None:
    with pytest.raises(ValueError, match=message):
        standalone(tmp_path, DEMO=True, CORS_ORIGINS=origins)


def test_no_other_origin_is_let_in_by_default(client, auth) -> None:
    answer = client.get("/api/migration/config", headers={**auth("alice"), "Origin": "https://elsewhere.example"})
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers


def test_an_origin_named_in_cors_origins_is_let_in_with_credentials(make_app, auth) -> None:
    app = make_app(None, CORS_ORIGINS="https://app.example, http://localhost:3000")
    client = app.test_client()
    preflight = client.options(
        "/api/migration/sessions",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    answer = client.get("/api/migration/config", headers={**auth("alice"), "Origin": "https://app.example"})
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert answer.headers["Access-Control-Allow-Credentials"] == "true" and "Origin" in answer.headers["Vary"]
    other = client.get("/api/migration/config", headers={**auth("alice"), "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    loader = client.get("/lsmigrate/loader.js").get_data(as_text=True)
    assert '"api": "http://localhost/api/migration"' in loader  # full URLs for a page on another origin


def test_any_origin_is_never_given_credentials(make_app, auth) -> None:
    app = make_app(None, CORS_ORIGINS="*")
    answer = app.test_client().get("/api/migration/config", headers={**auth("a"), "Origin": "https://x.example"})
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers


def test_a_catalog_the_page_cannot_load_is_refused_at_start_up() -> None:
    from lsmigrate.shared.stores import StoreCatalog, StoreSpec

    unnamed = StoreCatalog([StoreSpec(name="notes", key="notes")])  # no module holds it: the page could not
    app = Flask(__name__)
    app.config["LSMIGRATE_SECRET_KEY"] = "vQ3r9LmX2pT7sW4yB8nD1fH6jK0cZ5aE"
    with pytest.raises(CatalogError, match="the page must load the same catalog"):
        LSMigrate(app, db=db, stores=unnamed)
