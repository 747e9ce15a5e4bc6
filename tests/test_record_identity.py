"""Record identity is scoped by user (design §12): another user who knows a record's public ids (its UUID, its
derived id, its unkeyed relocated id) and uploads rows under them first changes nothing of its outcome."""

from __future__ import annotations

import uuid
from typing import Any

from lsmigrate.server.records.identity import keyed_relocated_id
from lsmigrate.shared.ids import derived_id, relocated_id
from tests.migration_helpers import db_rows, migrate

ALICES = {"id": "task-1", "title": "Alice's own", "updatedAt": "2024-01-01T00:00:00.000Z"}


def salt(postgres: Any) -> bytes:
    [(value,)] = db_rows(postgres, "SELECT value FROM lsmigrate_salts WHERE name = 'relocation'")
    return bytes.fromhex(value)


def rows_of(postgres: Any, user_id: str) -> dict[str, str]:
    return {str(i): t for i, t in db_rows(postgres, "SELECT id, title FROM tasks WHERE user_id = %s", user_id)}


def squat(client: Any, headers: dict[str, str], *ids: uuid.UUID | str) -> dict[str, str]:
    """Bob uploads rows under the given ids (UUID source ids are kept as row ids) and gets them."""
    records = [{"id": str(each), "title": f"bob's {n}"} for n, each in enumerate(ids)]
    migrate(client, headers, {"task-store": records}, "bob")
    return {record["id"]: record["title"] for record in records}


def test_ids_another_user_pre_claimed_do_not_change_the_outcome(client, auth, postgres) -> None:
    derived = uuid.UUID(derived_id("alice", "tasks", "task-1"))
    unkeyed = uuid.UUID(relocated_id("alice", "tasks", str(derived)))
    bobs = squat(client, auth("bob"), derived, unkeyed)
    assert rows_of(postgres, "bob") == bobs

    sid, answers, verdict = migrate(client, auth("alice"), {"task-store": [ALICES]}, "alice")
    [result] = answers[0]["results"]
    assert result["outcome"] == "inserted", result
    assert {"code": "foreign_id", "field": "id"} in result["warnings"]
    keyed = keyed_relocated_id(salt(postgres), "alice", "tasks", derived)
    assert result["target_id"] == str(keyed) not in bobs
    assert rows_of(postgres, "alice") == {str(keyed): "Alice's own"}
    assert "task-store" in verdict["deletable_keys"]
    assert rows_of(postgres, "bob") == bobs  # never touched

    _, again, _ = migrate(client, auth("alice"), {"task-store": [ALICES]}, "alice-again")
    assert (again[0]["results"][0]["outcome"], again[0]["results"][0]["target_id"]) == ("unchanged", str(keyed))


def test_a_row_relocated_before_the_salt_is_still_the_records_own(client, auth, postgres) -> None:
    derived = uuid.UUID(derived_id("alice", "tasks", "task-1"))
    squat(client, auth("bob"), derived)
    migrate(client, auth("alice"), {"task-store": [ALICES]}, "alice")
    unkeyed = relocated_id("alice", "tasks", str(derived))
    db_rows(postgres, "UPDATE tasks SET id = %s WHERE user_id = 'alice' RETURNING id", unkeyed)  # as it was made

    _, answers, _ = migrate(client, auth("alice"), {"task-store": [ALICES]}, "alice-again")
    assert (answers[0]["results"][0]["outcome"], answers[0]["results"][0]["target_id"]) == ("unchanged", unkeyed)
    assert rows_of(postgres, "alice") == {unkeyed: "Alice's own"}  # nothing beside it


def test_a_record_whose_every_id_is_taken_keeps_its_key_whatever_the_store_says(client, auth, postgres) -> None:
    derived = uuid.UUID(derived_id("alice", "tasks", "task-1"))
    # Only someone who read the salt out of the database can do this.
    squat(client, auth("bob"), derived, keyed_relocated_id(salt(postgres), "alice", "tasks", derived))
    _, answers, verdict = migrate(client, auth("alice"), {"task-store": [ALICES]}, "alice")
    assert answers[0]["results"][0]["outcome"] == "quarantined"
    assert verdict["kept_keys"]["task-store"]["reason"] == "foreign_id"
    assert "task-store" not in verdict["deletable_keys"]
