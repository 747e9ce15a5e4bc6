"""Canonical JSON, record digests and manifest digests."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from lsmigrate.shared.canonical import canonical_json, digest, manifest_digest, parse_json


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
