"""The README's "Adding a store" example runs as written."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsmigrate.shared.canonical import canonical_json

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_spec() -> Any:
    [code] = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(README), "exec"), namespace)  # the project's own README
    return namespace["NOTES"]


def test_the_readme_store_reads_upgrades_and_maps_a_redux_persist_blob() -> None:
    spec = readme_spec()
    note = {"id": "n1", "title": "Groceries", "text": "milk", "isPinned": "true", "attachments": [1]}
    raw = json.dumps(
        {
            "notes": json.dumps({"items": [note]}),
            "_persist": json.dumps({"version": 1, "rehydrated": True}),
        }
    )
    extracted = spec.extract("persist:root", raw)
    assert extracted.warnings == [{"code": "version_upgraded", "from": 1, "to": 2}]
    [mapped] = spec.map(extracted.records, key="persist:root", user_id="alice", migrated_at=datetime.now(UTC))
    assert mapped.row["body"] == "milk"
    assert mapped.row["pinned"] is True
    assert mapped.row["metadata"]["attachments"] == [1]
    upgraded = {"id": "n1", "title": "Groceries", "body": "milk", "isPinned": "true", "attachments": [1]}
    assert canonical_json(spec.rebuild(mapped.row, mapped.secrets)) == canonical_json(upgraded)
