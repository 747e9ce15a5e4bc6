"""Canonical JSON, record digests and manifest digests."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsmigrate.shared.canonical import canonical_json, digest, manifest_digest, nested_deeper_than, parse_json


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"b": 1, "a": [1, 2]}, '{"a":[1,2],"b":1}'),
        ({"t": "é<b>"}, '{"t":"é<b>"}'),
        (1.0, "1"),
        (1.5, "1.5"),
        (2.0**60, "1.152921504606847e+18"),
        ([True, None], "[true,null]"),
    ],
)
def test_canonical_form(value: Any, text: str) -> None:
    assert canonical_json(value) == text


def test_digest_ignores_key_order_and_whitespace_of_the_source() -> None:
    assert digest(parse_json('{ "a": 1, "b": [1.0] }')) == digest(parse_json('{"b":[1],"a":1}'))
    assert digest({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()


def test_manifest_digest_depends_on_order_and_count() -> None:
    one, two = digest(1), digest(2)
    assert manifest_digest([one, two]) != manifest_digest([two, one])
    assert manifest_digest([one]) != manifest_digest([one, one])
    assert manifest_digest([]) == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[-Infinity]"])
def test_non_json_constants_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_json(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1e400", "a number too large for a double"),
        ('{"a": [-1.5E+309]}', "a number too large for a double"),
        ("1" + "0" * 400 + ".0", "a number too large for a double"),
    ],
)
def test_numbers_beyond_a_double_are_refused_where_they_are_read(text: str, message: str) -> None:
    # json reads them as infinity, which canonical_json then refuses; parse_json refuses them first.
    with pytest.raises(ValueError, match=message):
        parse_json(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-0.0, "0"),
        (2.0**53, "9007199254740992.0"),
        (2.0**53 - 1, "9007199254740991"),
        ({"a.0": 1.0, "b": "1.0", "c": ["x.0", 2.0]}, '{"a.0":1,"b":"1.0","c":["x.0",2]}'),
        (['"1.0', "\\", '\\"', 1.0], '["\\"1.0","\\\\","\\\\\\"",1]'),
        ([0.5, 10.0, -3.0, 1e16, 1.5e-07], "[0.5,10,-3,1e+16,1.5e-07]"),
    ],
)
def test_whole_floats_become_integers_and_strings_are_untouched(value: Any, text: str) -> None:
    assert canonical_json(value) == text


def test_deep_nesting_with_whole_floats_is_serialised() -> None:
    # The whole-float pass once walked the value recursively and ran out of stack near 500 levels.
    value: Any = 1.0
    for _ in range(600):
        value = [value]
    assert canonical_json(value) == "[" * 600 + "1" + "]" * 600


def _reference_canonical(value: Any) -> str:
    """The canonical form, spelled out: whole floats below 2**53 replaced by ints, then encoded."""

    def normalise(item: Any) -> Any:
        if isinstance(item, float) and item.is_integer() and abs(item) < 2**53:
            return int(item)
        if isinstance(item, dict):
            return {key: normalise(child) for key, child in item.items()}
        if isinstance(item, list):
            return [normalise(child) for child in item]
        return item

    return json.dumps(normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_text = st.text(st.characters(exclude_categories=()) | st.sampled_from('"\\[]{}.0,'), max_size=8)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1.0, -0.0, 2.0**53, 1e15, 3.0])
    | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_canonical_form_matches_its_definition(value: Any) -> None:
    assert canonical_json(value) == _reference_canonical(value)
    assert parse_json(canonical_json(value)) == parse_json(_reference_canonical(value))


@settings(max_examples=300, deadline=None)
@given(_json, st.booleans(), st.integers(min_value=0, max_value=5))
def test_nesting_depth_is_read_from_the_text(value: Any, ascii_only: bool, limit: int) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=None if ascii_only else 1)
    assert nested_deeper_than(text, limit) == (_depth(value) > limit)
    if _depth(value) > limit:
        with pytest.raises(ValueError, match=f"nested more than {limit} levels deep"):
            parse_json(text, max_depth=limit)
    else:
        assert canonical_json(parse_json(text, max_depth=limit)) == canonical_json(value)
