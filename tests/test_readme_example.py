"""The README's store examples run as written: the Python catalog, and the JSON and TOML files (the same stores)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.declared import catalog_from_text

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_blocks(language: str) -> list[str]:
    """The README's fenced code blocks in `language`."""
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def readme_spec() -> Any:
    [code] = [block for block in readme_blocks("python") if "STORES = StoreCatalog" in block]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(README), "exec"), namespace)  # the project's own README
    return namespace["STORES"].named("notes")


def test_the_readme_store_reads_upgrades_and_maps_a_redux_persist_blob() -> None:
    spec = readme_spec()
    note = {"id": "n1", "title": "Groceries", "text": "milk", "isPinned": "true", "attachments": [1]}
    raw = json.dumps({"items": json.dumps([note]), "_persist": json.dumps({"version": 1, "rehydrated": True})})
    extracted = spec.extract("persist:notes", raw)
    assert extracted.warnings == [{"code": "version_upgraded", "from": 1, "to": 2}]
    [mapped] = spec.map(extracted.records, key="persist:notes", user_id="alice", migrated_at=datetime.now(UTC))
    assert mapped.row["body"] == "milk"
    assert mapped.row["pinned"] is True
    assert mapped.row["metadata"]["attachments"] == [1]
    upgraded = {"id": "n1", "title": "Groceries", "body": "milk", "isPinned": "true", "attachments": [1]}
    assert canonical_json(spec.rebuild(mapped.row, mapped.secrets)) == canonical_json(upgraded)


def test_the_readme_json_and_toml_catalogs_are_valid_and_the_same() -> None:
    [json_text] = [block for block in readme_blocks("json") if '"stores"' in block]
    [toml_text] = [block for block in readme_blocks("toml") if "[[stores]]" in block]
    from_json = catalog_from_text(json_text, ".json", "README json")
    from_toml = catalog_from_text(toml_text, ".toml", "README toml")
    assert from_json.describe() == from_toml.describe()
    assert [spec.name for spec in from_json] == ["projects", "todos", "notes"]
    todos = from_json.named("todos")
    raw = json.dumps(
        {"state": {"todos": [{"id": 1, "title": "Ship", "projectId": "p1", "dueDate": "2025-06-09"}]}, "version": 2}
    )
    [mapped] = todos.map(
        todos.extract("todo-app", raw).records, key="todo-app", user_id="u", migrated_at=datetime.now(UTC)
    )
    assert mapped.row is not None and mapped.row["due_on"] == "2025-06-09"  # a day stays a day
    assert mapped.row["project_id"] != "p1" and mapped.row["metadata"]["original"]["projectId"] == "p1"
