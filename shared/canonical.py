"""Canonical JSON and the digests built on it.

The canonical form of a JSON value is `json.dumps` with sorted keys, no
insignificant whitespace and no ASCII escaping, encoded as UTF-8 (a lone
surrogate, which a JavaScript string can hold, is encoded as its three
bytes). Numbers: integers in decimal; a float that holds a whole number below
2**53 is written as that integer, so `1.0` (which `JSON.stringify` writes as
`1`) and `1` digest alike; any other float in Python's shortest round-trip
form (`0.1`, `1e+16`, `1.5e-07`). NaN and infinities are not JSON and are
refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

_SAFE_INTEGER = 2**53
# Every whole float below 2**53 serialises as digits, ".0", then a delimiter.
_WHOLE_FLOAT = re.compile(r"\.0(?=[,\]}]|$)")
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _normalise_numbers(value: Any) -> Any:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, dict):
        return {key: _normalise_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise_numbers(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """Serialise a JSON value in lsmigrate's canonical form."""
    text = _encode(value)
    # Most records hold no whole float; the second pass runs only when one may be present.
    if _WHOLE_FLOAT.search(text) is None:
        return text
    return _encode(_normalise_numbers(value))


def digest(value: Any) -> str:
    """sha256 (hex) of a JSON value's canonical form."""
    return hashlib.sha256(canonical_json(value).encode("utf-8", "surrogatepass")).hexdigest()


def manifest_digest(record_digests: Iterable[str]) -> str:
    """Digest of a key's records: sha256 over their digests in source order, one per line."""
    hasher = hashlib.sha256()
    for record_digest in record_digests:
        hasher.update(record_digest.encode("ascii"))
        hasher.update(b"\n")
    return hasher.hexdigest()


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> Any:
    """Parse JSON text strictly; NaN, Infinity and nesting Python cannot hold raise ValueError."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as error:
        raise ValueError("nested too deeply") from error
