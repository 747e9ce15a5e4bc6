"""Properties of whole keys (design §11): for arbitrary JSON in every envelope and shape,
`rebuild_key(split_key(value))` is the value in canonical form; split is total (records and remainder,
or a SourceError naming the key); strip empties only the claimed part."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lsmigrate.shared.canonical import canonical_json
from lsmigrate.shared.envelopes import (
    BARE,
    MOBX_PERSIST_STORE,
    REDUX_PERSIST,
    SUPERJSON,
    TANSTACK_QUERY,
    ZUSTAND,
    Envelope,
    SourceError,
)
from lsmigrate.shared.keys import rebuild_key, split_key, strip_edits, strip_text
from lsmigrate.shared.shapes import object_key
from lsmigrate.shared.stores import StoreSpec
from tests.test_properties import PROPERTY, json_values, keys, scalars, text

ids = st.text(max_size=6) | st.integers(min_value=-(2**53), max_value=2**53)


def _adapter(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    unique: dict[str, tuple[Any, Any]] = {}
    for entity_id, value in pairs:
        unique.setdefault(object_key(entity_id), (entity_id, value))
    return {"ids": [entity_id for entity_id, _ in unique.values()], "entities": {k: v for k, (_, v) in unique.items()}}


CONTAINERS: dict[str, st.SearchStrategy[Any]] = {
    "array": st.lists(json_values, max_size=5),
    "by_id": st.dictionaries(keys, json_values, max_size=5),
    "entity_adapter": st.lists(st.tuples(ids, json_values), max_size=5).map(_adapter),
    "entries": st.lists(st.tuples(json_values, json_values).map(list), max_size=5),
    "one": json_values,
    "scalar": scalars,
}
# The key's state around the store's part: anything, under names the part does not use.
rests = st.dictionaries(keys.filter(lambda name: name not in ("part", "_persist")), json_values, max_size=4)


def _tree(envelope: Envelope, state: dict[str, Any], version: int) -> Any:
    if envelope is ZUSTAND:
        return {"state": state, "version": version}
    if envelope is REDUX_PERSIST:
        return {**state, "_persist": {"version": version, "rehydrated": True}}
    if envelope is SUPERJSON:
        return {"json": state, "meta": {"values": {"part.0": ["Date"], "other": ["set"]}, "v": 1}}
    if envelope is MOBX_PERSIST_STORE:
        return {**state, "__mps__": {"version": version}}
    if envelope is TANSTACK_QUERY:
        return {"clientState": {"queries": [{"queryKey": ["x"], "state": {"data": state}}]}}
    return state


def _path(envelope: Envelope) -> str:
    return 'clientState.queries[queryKey=["x"]].state.data.part' if envelope is TANSTACK_QUERY else "part"


def _raw(envelope: Envelope, tree: Any) -> str:
    if envelope is REDUX_PERSIST:
        return json.dumps({name: json.dumps(value, ensure_ascii=False) for name, value in tree.items()})
    return json.dumps(tree, ensure_ascii=False)


envelopes = st.sampled_from([ZUSTAND, REDUX_PERSIST, BARE, SUPERJSON, MOBX_PERSIST_STORE, TANSTACK_QUERY])


@st.composite
def keys_of_every_kind(draw: st.DrawFn) -> tuple[StoreSpec, str, Any]:
    envelope = draw(envelopes)
    shape = draw(st.sampled_from(sorted(CONTAINERS)))
    container = draw(CONTAINERS[shape])
    state = {**draw(rests), "part": container}
    spec = StoreSpec(
        name="s", key="k", envelope=envelope, records_path=_path(envelope), shape=shape,
        id_field=None if shape in ("one", "scalar") else "id",
    )  # fmt: skip
    tree = _tree(envelope, state, 0)
    return spec, _raw(envelope, tree), tree


@PROPERTY
@given(keys_of_every_kind())
def test_rebuild_of_split_is_the_key_in_canonical_form(case: tuple[StoreSpec, str, Any]) -> None:
    spec, raw, tree = case
    split = split_key("k", raw, [spec])
    assert canonical_json(rebuild_key(split.records, split.remainder)) == canonical_json(tree)
    # The remainder and records travel as JSON: the same from their JSON text.
    records, remainder = json.loads(json.dumps(split.records)), json.loads(json.dumps(split.remainder))
    assert canonical_json(rebuild_key(records, remainder)) == canonical_json(tree)


@PROPERTY
@given(keys_of_every_kind())
def test_strip_takes_out_the_records_and_nothing_else(case: tuple[StoreSpec, str, Any]) -> None:
    spec, raw, _ = case
    split = split_key("k", raw, [spec])
    edits = strip_edits(split, [spec])
    stripped = strip_text(raw, spec.envelope, edits)
    again = split_key("k", stripped, [spec])
    expected = split.records["s"] if spec.shape in ("one", "scalar") else []
    assert again.records["s"] == expected
    if spec.envelope is not SUPERJSON:  # superjson's meta loses the annotations of what was taken out
        assert canonical_json(again.remainder["tree"]) == canonical_json(split.remainder["tree"])


@PROPERTY
@given(st.sampled_from(sorted(CONTAINERS)), envelopes, json_values | text)
def test_split_is_total(shape: str, envelope: Envelope, value: Any) -> None:
    spec = StoreSpec(name="s", key="k", envelope=envelope, records_path=_path(envelope), shape=shape)
    raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    try:
        split = split_key("k", raw, [spec])
    except SourceError as error:
        assert error.key == "k" and error.code in ("invalid_json", "wrong_shape", "version_too_new", "unreadable")
        return
    assert canonical_json(rebuild_key(split.records, split.remainder)) == canonical_json(envelope.read(raw))
