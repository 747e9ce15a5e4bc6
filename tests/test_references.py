"""References between stores, on real PostgreSQL: rewritten to the referenced record's row id by the same
deterministic rule whichever batch or session brings that record, the original kept, a missing one warned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from lsmigrate.shared.catalog import load_catalog
from tests.migration_helpers import db_rows
from tests.runner_helpers import FakeLocalStorage, client_sender, run

CATALOG = {
    "stores": [
        {"name": "projects", "key": "zz-projects", "envelope": "bare", "fields": {"name": "text"}},
        {
            "name": "tasks",
            "key": "tasks",
            "envelope": "bare",
            "fields": {"title": "text", "projectId": "text", "parentId": "text"},
            "references": {"projectId": "projects", "parentId": "tasks"},
        },
    ]
}


@pytest.fixture
def catalog_file(tmp_path: Path) -> str:
    path = tmp_path / "stores.json"
    path.write_text(json.dumps(CATALOG))
    return str(path)


@pytest.fixture
def references_app(make_app, catalog_file) -> Flask:
    app: Flask = make_app(None, DEMO=False, STORES=catalog_file)
    return app


def migrate(app: Flask, auth, catalog_file: str, items: dict[str, list[Any]], batch_size: int = 10) -> dict[str, Any]:
    storage = FakeLocalStorage({key: json.dumps(records) for key, records in items.items()})
    sender = client_sender(app.test_client(), auth("alice"))
    report = run(storage, sender, batch_size=batch_size, catalog=load_catalog(catalog_file))
    assert report["state"] == "done", report.get("error")
    return report


def row_id(postgres, store: str, record_id: str) -> str:
    query = "SELECT id::text FROM migrated_records WHERE store = %s AND record_id = %s"
    [(found,)] = db_rows(postgres, query, store, record_id)
    return str(found)


def task(postgres, record_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    [(data, meta)] = db_rows(
        postgres, "SELECT data, metadata FROM migrated_records WHERE store = 'tasks' AND record_id = %s", record_id
    )
    return data, meta


def ledger_warnings(postgres, key: str) -> list[Any]:
    """The warnings of a key's records, in source order."""
    query = "SELECT warnings FROM migration_ledger WHERE key = %s ORDER BY index"
    return [row[0] for row in db_rows(postgres, query, key)]


def unresolved(postgres, key: str) -> list[Any]:
    """The reference_unresolved warnings of a key's records."""
    return [w for warnings in ledger_warnings(postgres, key) for w in warnings if w["code"] == "reference_unresolved"]


@pytest.mark.parametrize("case", ["same_batch", "later_batch", "later_session", "missing_target"])
def test_a_reference_becomes_the_referenced_records_row_id(references_app, auth, postgres, catalog_file, case) -> None:
    parent = {"id": "t1", "title": "Parent"}
    child = {"id": "t2", "title": "Child", "parentId": "t1", "projectId": "p1"}
    project = {"id": "p1", "name": "Launch"}
    if case == "same_batch":
        migrate(references_app, auth, catalog_file, {"tasks": [parent, child], "zz-projects": [project]})
    elif case == "later_batch":  # the child's batch goes first, its parent comes in the next one
        migrate(references_app, auth, catalog_file, {"tasks": [child, parent], "zz-projects": [project]}, batch_size=1)
    elif case == "later_session":  # the referenced records come in another session, after the child's
        migrate(references_app, auth, catalog_file, {"tasks": [child]})
        migrate(references_app, auth, catalog_file, {"tasks": [child, parent], "zz-projects": [project]})
    else:
        migrate(references_app, auth, catalog_file, {"tasks": [child]})
    data, meta = task(postgres, "t2")
    assert meta["original"] == {"parentId": "t1", "projectId": "p1"}  # the originals kept
    if case == "missing_target":
        # Rewritten all the same (the record may still come), and said.
        warnings = ledger_warnings(postgres, "tasks")[0]
        assert {"code": "reference_unresolved", "field": "parentId", "store": "tasks"} in warnings
        assert {"code": "reference_unresolved", "field": "projectId", "store": "projects"} in warnings
        assert db_rows(postgres, "SELECT count(*) FROM migrated_records WHERE id::text = %s", data["parentId"]) == [
            (0,)
        ]
        return
    assert data["parentId"] == row_id(postgres, "tasks", "t1")
    assert data["projectId"] == row_id(postgres, "projects", "p1")
    if case == "same_batch":
        assert unresolved(postgres, "tasks") == []


def test_referenced_stores_are_uploaded_first(references_app, auth, postgres, catalog_file) -> None:
    migrate(
        references_app, auth, catalog_file, {"tasks": [{"id": "t", "projectId": "p"}], "zz-projects": [{"id": "p"}]}
    )
    assert db_rows(postgres, "SELECT seq, key FROM migration_batches ORDER BY seq") == [
        (0, "zz-projects"),
        (1, "tasks"),
    ]
    assert unresolved(postgres, "tasks") == []


def test_a_rollback_and_a_rerun_give_the_same_references(references_app, auth, postgres, catalog_file) -> None:
    items = {"tasks": [{"id": "t2", "parentId": "t1"}, {"id": "t1"}], "zz-projects": []}
    first = migrate(references_app, auth, catalog_file, items)
    before = task(postgres, "t2")
    client = references_app.test_client()
    assert (
        client.post(f"/api/migration/sessions/{first['session_id']}/rollback", headers=auth("alice")).status_code == 200
    )
    migrate(references_app, auth, catalog_file, items)
    assert task(postgres, "t2") == before


def test_a_reference_to_an_unknown_store_or_field_is_a_catalog_error(tmp_path) -> None:
    from lsmigrate.shared.declared import CatalogError

    broken = json.loads(json.dumps(CATALOG))
    broken["stores"][1]["references"] = {"projectId": "nowhere"}
    path = tmp_path / "stores.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(CatalogError, match="references"):
        load_catalog(str(path))
