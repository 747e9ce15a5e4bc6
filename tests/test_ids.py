"""Deterministic ids: uuid5 in lsmigrate's namespace, for every string a page can hold."""

from __future__ import annotations

import json
import uuid

import pytest

from lsmigrate.shared.ids import NAMESPACE, content_id, derived_id, relocated_id


@pytest.mark.parametrize("source_id", ["task-1", 17, "17", "é中😀", "", 1.5])
def test_derived_ids_are_uuid5_of_user_store_and_canonical_id(source_id: object) -> None:
    name = f"alice\ntasks\n{json.dumps(source_id, ensure_ascii=False, separators=(',', ':'))}"
    assert derived_id("alice", "tasks", source_id) == str(uuid.uuid5(NAMESPACE, name))


def test_the_namespace_is_the_documented_one() -> None:
    assert str(NAMESPACE) == "5b0e3f4c-6d1a-5c3e-9a7b-2f1d0c8e4a61"


def test_a_lone_surrogate_in_an_id_gives_a_stable_id_of_its_own() -> None:
    lone = derived_id("alice", "tasks", "task-\ud800")
    assert uuid.UUID(lone).version == 5
    assert lone == derived_id("alice", "tasks", "task-\ud800")
    assert lone != derived_id("alice", "tasks", "task-\udc00")


def test_ids_differ_by_user_store_and_kind() -> None:
    ids = {
        derived_id("alice", "tasks", "x"),
        derived_id("bob", "tasks", "x"),
        derived_id("alice", "environments", "x"),
        content_id("alice", "tasks", "x"),
        relocated_id("alice", "tasks", "x"),
    }
    assert len(ids) == 5
