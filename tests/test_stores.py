"""Reading Zustand envelopes out of localStorage values."""

from __future__ import annotations

import json

import pytest

from lsmigrate.demo.stores import STORES
from lsmigrate.shared.envelopes import SourceError


def test_records_sit_in_the_zustand_state() -> None:
    raw = json.dumps({"state": {"tasks": [{"id": "a"}, 5]}, "version": 0})
    assert STORES.named("tasks").extract("task-store", raw).records == [{"id": "a"}, 5]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "JSON text"),
        ("[1, 2]", "a Zustand envelope {state, version} with an object state"),
        ('{"state": {"tasks": {"a": 1}}}', "an array at state.tasks"),
        ('{"state": {}}', "an array at state.tasks"),
    ],
)
def test_a_value_of_the_wrong_shape_is_reported_precisely(raw: str, expected: str) -> None:
    with pytest.raises(SourceError) as caught:
        STORES.named("tasks").extract("task-store", raw)
    assert caught.value.key == "task-store"
    assert caught.value.expected == expected


def test_unknown_keys_have_no_spec() -> None:
    assert STORES.spec_for_key("theme") is None
    assert STORES.spec_for_key("environments") is STORES.named("environments")
